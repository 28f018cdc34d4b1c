"""One HTTP exchange with the API, standard library only: an application that imports the client pays for no
HTTP library and no framework. A non-2xx answer becomes the domain's error through the shared problem table
(adapters/problem_types.py), wrapped with what the retry rules need: the status and the Retry-After delay."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sprongus.adapters.bounded_read import read_at_most
from sprongus.adapters.http_client import MAX_ANSWER, MAX_PROBLEM, api_base, refusing_opener, without_query
from sprongus.adapters.problem_types import TYPE_PREFIX, error_from_problem
from sprongus.domain.credentials import without_userinfo
from sprongus.domain.errors import ConfigError, RemoteUnavailable, SprongusError, Unauthenticated
from sprongus.domain.values import SecretValue


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any = field(repr=False)  # the parsed JSON, or None for an empty body: revealed values, kept out of
    # tracebacks that print their frames' locals (an error tracker's, pytest --showlocals)


@dataclass(frozen=True, slots=True)
class Payload:
    """What a request sends (a value to write, a JWT to exchange), as the frames that pass it on hold it: no repr
    of a frame's locals (an error tracker's, a rich traceback's) prints it."""

    content: Any = field(repr=False)


MAX_RETRY_AFTER = 10**9  # seconds: a longer Retry-After is passed on as this


class HttpFailure(Exception):
    """A request that failed: the domain error to raise, the status (None: no answer at all, the request may or may
    not have reached the server) and the server's Retry-After in seconds. Internal: callers see `error` only."""

    def __init__(self, error: SprongusError, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.status = status
        self.retry_after = retry_after


_OPENER = refusing_opener(lambda _url, code, target: (
    f"the API answered {code} with a redirect to {without_query(target)}; not followed: point the client at the "
    "API's own address"))


def checked_base(url: str, setting: str = "api_url") -> str:
    """The API's base URL ending in /v1; an http(s) URL without credentials in it, else ConfigError (which never
    repeats the URL: it may hold a password)."""
    if not isinstance(url, str):
        raise ConfigError(f"{setting}: the API's http(s) base URL is needed, e.g. https://secrets.example.com")
    without_userinfo(setting, url)  # the CLI's rule: no `@` anywhere (a password cut short by a `/`), a numeric port
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting}: the API's http(s) base URL is needed, e.g. https://secrets.example.com")
    if parts.query or parts.fragment:  # it would end up inside every path, and in reprs and messages
        raise ConfigError(f"{setting}: the API's base URL takes no query string or fragment")
    return api_base(url)


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110 also allows an HTTP date; the API and the usual proxies send seconds)."""
    text = (value or "").strip()
    # ASCII digits only: str.isdigit() is also true of `²`, which float() and int() refuse with a bare ValueError.
    return float(text) if text.isascii() and text.isdigit() else None


class Http:
    """JSON (or a form) to `<base>/<path>` with an optional bearer token."""

    def __init__(self, api_url: str, timeout: float, setting: str = "api_url") -> None:
        self.base = checked_base(api_url, setting)
        self.timeout = timeout
        self.setting = setting  # what the messages name: the constructor's argument or SPRONGUS_API_URL

    def send(self, method: str, path: str, *, token: SecretValue | None = None, body: Payload | None = None,
             form: Payload | None = None, query: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None) -> Answer:
        """`body`: JSON; `form`: a form's fields. Whatever is raised, this frame names neither the bytes sent nor
        the bearer token: they live in the urllib Request, built by _request, whose repr shows neither."""
        request = self._request(method, path, token, body, form, query, headers)
        unsendable = False
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                raw, status = read_at_most(response.read1, MAX_ANSWER, self.timeout), response.status
        except urllib.error.HTTPError as exc:
            raise self._failure(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise HttpFailure(RemoteUnavailable(f"cannot reach the API at {self.base}: {reason}"), None) from None
        except (ValueError, UnicodeError):  # a header http.client will not send: its message repeats the header
            unsendable = True
        if unsendable:  # raised here, with no exception attached that holds the header
            raise HttpFailure(ConfigError("a header of the request holds a character HTTP cannot carry"), None)
        if raw is None:
            raise HttpFailure(RemoteUnavailable(f"the API at {self.base} answered {status} with a body over "
                                                f"{MAX_ANSWER // 2**20} MiB"), status)
        try:
            return Answer(status, json.loads(raw) if raw else None)
        except (ValueError, RecursionError):
            error = RemoteUnavailable(f"the API at {self.base} answered {status} with a body that is not JSON")
            raise HttpFailure(error, status) from None

    def _request(self, method: str, path: str, token: SecretValue | None, body: Payload | None,
                 form: Payload | None, query: Mapping[str, Any] | None,
                 headers: Mapping[str, str] | None) -> urllib.request.Request:
        url = self.base + urllib.parse.quote(path, safe="/:.-_@")
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        sent = {"Accept": "application/json", **(headers or {})}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form.content).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data, sent["Content-Type"] = json.dumps(body.content).encode(), "application/json"
        if token is not None:
            sent["Authorization"] = f"Bearer {token.reveal()}"
        return urllib.request.Request(url, data=data, method=method, headers=sent)  # noqa: S310 - http(s) only

    def _failure(self, exc: urllib.error.HTTPError) -> HttpFailure:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        delay = retry_after(headers.pop("retry-after", None))
        if delay is not None:  # as digits the shared table can int() (not `²`, not 5,000 of them)
            headers["retry-after"] = str(int(min(delay, MAX_RETRY_AFTER)))
        try:
            doc = json.loads(read_at_most(exc.read1, MAX_PROBLEM, self.timeout) or b"{}")  # too long: by its status
        except (ValueError, RecursionError, OSError, http.client.HTTPException):
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        if exc.code == 404 and doc.get("type") != TYPE_PREFIX + "not-found":
            # No such route, not no such secret: the URL names another server or path. Said as such, never as the
            # page's own text.
            return HttpFailure(ConfigError(f"{self.setting}: {self.base} has no sprongus API (HTTP 404); use the API's "
                                           "base URL, e.g. https://secrets.example.com"), 404)
        if exc.code == 400 and "error" in doc and "type" not in doc:
            return HttpFailure(_oauth_error(doc), 400)  # the token endpoint answers in RFC 6749's format
        return HttpFailure(error_from_problem(exc.code, doc, headers), exc.code, delay)


def _oauth_error(doc: Mapping[str, Any]) -> SprongusError:
    """RFC 6749 5.2. Only the error code is repeated, as far as it is one: the description is the server's text."""
    code = doc.get("error")
    code = code if isinstance(code, str) and 0 < len(code) <= 64 and all(c.isalnum() or c in "_-." for c in code) \
        else "no error code"
    if code == "invalid_grant":
        return Unauthenticated("the JWT was refused (invalid_grant: invalid, expired, already exchanged or not "
                               "trusted)")
    if code == "unsupported_grant_type":
        return ConfigError(f"the API does not exchange tokens ({code})")
    return Unauthenticated(f"the token exchange was refused ({code})")
