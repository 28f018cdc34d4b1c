"""SecretsApi over the REST API: the remote side of the CLI's `--remote`, with the same results and errors.

Standard-library HTTP only: it keeps the CLI's start-up fast. Problem answers become the domain's errors through
the one shared table (adapters/problem_types.py), so the CLI's exit codes serve both modes.
"""

from __future__ import annotations

import builtins
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sprongus.adapters.bounded_read import read_at_most
from sprongus.adapters.http_deadline import BoundedHTTPConnection, BoundedHTTPSConnection
from sprongus.adapters.problem_types import TYPE_PREFIX, error_from_problem
from sprongus.domain.errors import ConfigError, RemoteUnavailable, ValidationError
from sprongus.domain.history import History, VersionInfo
from sprongus.domain.import_item import ImportItem
from sprongus.domain.records import Page, SecretView, SetResult
from sprongus.domain.reports import BatchReveal, ExportResult, ImportReport, RevealedSecret, RotationReport
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports.progress import Progress
from sprongus.service.pages import api_views

TIMEOUT = 30.0


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def view_from_dict(data: dict[str, Any]) -> SecretView:
    value = None if data.get("masked", True) else SecretValue(data["value"])
    return SecretView(Scope.of(data["ownerType"], data.get("ownerId")), data["keyName"], data["version"],
                      _when(data["createdAt"]) or datetime.min, _when(data["updatedAt"]) or datetime.min,
                      _when(data.get("lastRotatedAt")), dict(data.get("meta") or {}), "", value,
                      deleted_at=_when(data.get("deletedAt")))


def history_from_dict(data: dict[str, Any]) -> History:
    return History([VersionInfo(i["version"], _when(i["createdAt"]), i["createdBy"], i["current"])
                    for i in data["items"]], _when(data["deletedAt"]))


RedirectMessage = Callable[[str, int, str], str]  # (request URL, status, target URL) -> the ConfigError's text


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry a bearer token, a JWT or a device code (and a reveal's POST as a GET) to wherever it
    points, https or not: refused. A configuration to fix, not an outage to wait out: trying again meets the same
    redirect."""

    def __init__(self, message: RedirectMessage) -> None:
        super().__init__()
        self._message = message

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        raise ConfigError(self._message(req.full_url, code, newurl))


class _VerifiedHttps(urllib.request.HTTPSHandler):
    """Certificates checked with a context of its own, made at the first https request: the default handler asks
    `ssl._create_default_https_context` at each connection, which any module of the process (or PYTHONHTTPSVERIFY=0
    on some distributions' Pythons) can turn into one that checks nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._verified: Any = None

    def https_open(self, req: urllib.request.Request) -> Any:
        if self._verified is None:
            import ssl  # here: a command that never speaks https does not load the CA store

            self._verified = ssl.create_default_context()
        return self.do_open(BoundedHTTPSConnection, req, context=self._verified)


class _BoundedHttp(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(BoundedHTTPConnection, req)


def refusing_opener(message: RedirectMessage) -> urllib.request.OpenerDirector:
    """An opener that follows no redirect (each refusal is a ConfigError with `message`'s text), checks the
    server's certificate whatever the process's default says, and bounds each answer's headers and body by the
    request's timeout as a whole (http_deadline.py)."""
    return urllib.request.build_opener(_RefuseRedirects(message), _BoundedHttp(), _VerifiedHttps())


# The most of an answer's body that is read: a 2xx answer (a batch reveal of 1,000 values of 64 KiB, as JSON, fits
# unless most of their characters need escaping), and an error's problem document.
MAX_ANSWER = 128 * 2**20
MAX_PROBLEM = 64 * 2**10


def advancing(cursor: str | None, next_cursor: object, seen: set[str] | None = None) -> str | None:
    """A listing's next cursor (opaque text), which must differ from the one it answered and, given `seen`, from
    every one before: a server that hands one back would be listed forever."""
    if next_cursor is None:
        return None
    if not isinstance(next_cursor, str) or next_cursor == cursor or (seen is not None and next_cursor in seen):
        raise RemoteUnavailable("the API answered a listing with a cursor that does not move on")
    if seen is not None:
        seen.add(next_cursor)
    return next_cursor


def without_query(url: str) -> str:
    """A redirect target as an error may name it: its query string could hold a code or a token."""
    target = urllib.parse.urlsplit(url)
    return f"{target.scheme}://{target.netloc}{target.path}" if target.netloc else target.path


_OPENER = refusing_opener(lambda _url, code, target: (
    f"SPRONGUS_API_URL: the API answered {code} with a redirect to {without_query(target)}; not followed: set "
    "SPRONGUS_API_URL to the API's own address"))


def api_base(url: str) -> str:
    """`http://host:8000`, `http://host:8000/` and `http://host:8000/v1/` all name the same API."""
    return url.rstrip("/").removesuffix("/v1").rstrip("/") + "/v1"


class ApiClient:
    """JSON over HTTP with a bearer token (none for the API's public routes); a problem answer raises its domain
    error. Redirects are refused."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self._base = api_base(base_url)
        self._token = token

    def use_token(self, token: str) -> None:
        """Calls from now on carry this token (a step-up sign-in replaced the old one)."""
        self._token = token

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        return self.send(method, path, body, query)[1]

    def send(self, method: str, path: str, body: Any = None,
             query: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        url = self._base + urllib.parse.quote(path, safe="/:.-_@")
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 - scheme checked
            **({"Authorization": f"Bearer {self._token}"} if self._token is not None else {}),
            "Content-Type": "application/json", "Accept": "application/json"})
        unsendable = False
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as response:
                raw, status = read_at_most(response.read1, MAX_ANSWER, TIMEOUT), response.status
        except urllib.error.HTTPError as exc:
            try:
                problem = json.loads(read_at_most(exc.read1, MAX_PROBLEM, TIMEOUT) or b"{}")  # too long: by status
            except (ValueError, RecursionError, OSError, http.client.HTTPException):
                problem = {}
            problem = problem if isinstance(problem, dict) else {}
            if exc.code == 404 and problem.get("type") != TYPE_PREFIX + "not-found":
                # No such route, not no such secret: the URL names another server or path (a web server's HTML
                # page, the framework's own http-404). Said as such, never as the page's text.
                raise ConfigError(f"SPRONGUS_API_URL: {self._base} has no sprongus API (HTTP 404); set it to the "
                                  "API's base URL, e.g. http://127.0.0.1:8000") from None
            headers = {k.lower(): v for k, v in exc.headers.items()}
            raise error_from_problem(exc.code, problem, headers) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # http.client's own errors quote what the server sent (a status line of 64 KiB, escape codes): their
            # class only. An OSError's text is this machine's ("Connection refused").
            reason = type(exc).__name__ if isinstance(exc, http.client.HTTPException) else getattr(exc, "reason", exc)
            raise RemoteUnavailable(f"cannot reach the API at {self._base}: {reason}") from None
        except (ValueError, UnicodeError):  # a header http.client will not send: its message repeats the header
            unsendable = True
        if unsendable:  # raised here, with no exception attached that holds the header
            raise ConfigError("SPRONGUS_TOKEN: holds a character an HTTP header cannot carry")
        if raw is None:
            raise RemoteUnavailable(f"the API at {self._base} answered {status} with a body over "
                                    f"{MAX_ANSWER // 2**20} MiB")
        try:
            return status, json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            raise RemoteUnavailable(f"the API at {self._base} answered {status} with a body that is not "
                                    "JSON") from None


def _path(scope: Scope, key: str) -> str:
    return f"/secrets/{scope.owner_type.value}/{scope.url_owner_id}/{key}"


def _scope_query(scope: Scope, prefix: str) -> dict[str, Any]:
    return {"ownerType": scope.owner_type.value, "ownerId": scope.owner_id, "prefix": prefix or None}


class HttpSecretsApi:
    """The caller is the token's subject: the server authorizes, limits and audits every call."""

    def __init__(self, client: ApiClient) -> None:
        self._api = client

    def set(self, scope: Scope, key: str, value: SecretValue, meta: object = None) -> SetResult:
        body: dict[str, Any] = {"value": value.reveal()}
        if meta is not None:
            body["meta"] = meta
        status, data = self._api.send("PUT", _path(scope, key), body)
        return SetResult(view_from_dict(data), status == 201)  # 201 created, 200 updated

    def get(self, scope: Scope, key: str, reveal: bool = False, version: int | None = None) -> SecretView:
        if reveal:
            body = {} if version is None else {"version": version}
            return view_from_dict(self._api.call("POST", _path(scope, key) + ":reveal", body))
        return view_from_dict(self._api.call("GET", _path(scope, key), query={"version": version}))

    def unset(self, scope: Scope, key: str) -> None:
        self._api.call("DELETE", _path(scope, key))

    def history(self, scope: Scope, key: str) -> History:
        return history_from_dict(self._api.call("GET", _path(scope, key) + "/versions"))

    def rollback(self, scope: Scope, key: str, to: int) -> SetResult:
        return SetResult(view_from_dict(self._api.call("POST", _path(scope, key) + ":rollback", {"version": to})),
                         False)

    def restore(self, scope: Scope, key: str) -> SecretView:
        return view_from_dict(self._api.call("POST", _path(scope, key) + ":restore"))

    def purge(self, scope: Scope, key: str) -> builtins.list[int]:
        answer = self._api.call("DELETE", _path(scope, key), query={"purge": "true"})
        return [int(version) for version in answer["destroyedVersions"]]

    def reveal_many(self, scope: Scope, prefix: str | None = None,
                    keys: builtins.list[str] | None = None) -> BatchReveal:
        body: dict[str, Any] = {"ownerType": scope.owner_type.value}
        for name, value in (("ownerId", scope.owner_id), ("prefix", prefix), ("keys", keys)):
            if value is not None:
                body[name] = value
        data = self._api.call("POST", "/secrets:reveal", body)
        return BatchReveal([RevealedSecret(i["keyName"], SecretValue(i["value"]), i["version"])
                            for i in data["items"]], list(data["missing"]))

    def list(self, scope: Scope, prefix: str = "", with_meta: bool = False, cursor: str | None = None,
             limit: int = 50, deleted: bool = False) -> Page:
        page = self._api.call("GET", "/secrets", query={
            **_scope_query(scope, prefix), "withMeta": "true" if with_meta else "false", "limit": limit,
            "cursor": cursor, "deleted": "true" if deleted else None})
        return Page([view_from_dict(item) for item in page["items"]], advancing(cursor, page["nextCursor"]))

    def import_(self, items: builtins.list[ImportItem] | None = None, bundle: dict[str, Any] | None = None,
                mode: str = "merge", allow_plaintext: bool = False, passphrase: SecretValue | None = None,
                prefix: str = "", dry_run: bool = False, progress: Progress | None = None) -> ImportReport:
        body: dict[str, Any] = {"mode": mode, "allowPlaintext": allow_plaintext, "prefix": prefix,
                                "dryRun": dry_run}
        if items is not None:
            body["items"] = [{"scope": str(i.scope), "key": i.key, "value": i.value.reveal(), "meta": i.meta}
                             for i in items]
        if bundle is not None:
            body["bundle"] = bundle
        if passphrase is not None:
            body["passphrase"] = passphrase.reveal()
        result = self._api.call("POST", "/secrets:import", body)
        changes = result["changes"]

        def pairs(name: str) -> list[tuple[str, str]]:
            return [(c["scope"], c["keyName"]) for c in changes[name]]

        return ImportReport(pairs("added"), pairs("updated"), pairs("removed"), result["dryRun"])

    def export(self, scope: Scope, prefix: str = "", bundle: bool = False, passphrase: SecretValue | None = None,
               progress: Progress | None = None, all_versions: bool = False) -> ExportResult:
        if passphrase is not None:
            raise ValidationError("passphrase-file", "passphrase bundles are exported locally, not via --remote")
        doc = self._api.call("GET", "/secrets:export", query={**_scope_query(scope, prefix),
                                                              "bundle": "true" if bundle else "false",
                                                              **({"allVersions": "true"} if all_versions else {})})
        if bundle:
            epoch = datetime.fromtimestamp(0, UTC)
            return ExportResult([SecretView(Scope.parse(i["scope"]), i["key"], i["version"], epoch, epoch, None,
                                            dict(i.get("meta") or {}), i["masterKeyId"]) for i in doc["items"]], doc)
        return ExportResult([view_from_dict({**item, "value": "********", "masked": True}) for item in doc["items"]])

    def rotate(self, scope: Scope, key: str | None = None, prefix: str = "", rotated_before: datetime | None = None,
               progress: Progress | None = None) -> RotationReport:
        keys = [key] if key else [v.key for v in api_views(self, scope, prefix)]
        for name in keys:
            self._api.call("POST", _path(scope, name) + ":rotate")
        return RotationReport(rotated=len(keys))
