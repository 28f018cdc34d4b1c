"""Signing in with an identity provider, client side: OIDC discovery, the device authorization grant (RFC 8628),
and the API's token exchange (RFC 8693) that turns the provider's JWT into a `spr_` API token.

Standard-library HTTP only (the CLI's start-up stays light): 10 s per request, answers capped at 64 KiB, redirects
refused. JWTs, device codes and API tokens are held as SecretValue, so no error line can carry one; messages name
the provider's error code, never its description (it is the provider's text, not ours to print).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sprongus.adapters.http_client import api_base, refusing_opener
from sprongus.adapters.problem_types import TYPE_PREFIX, error_from_problem
from sprongus.domain.api_token import TOKEN_TEXT
from sprongus.domain.errors import ConfigError, RemoteUnavailable, Unauthenticated
from sprongus.domain.values import SecretValue

TIMEOUT = 10.0
MAX_BODY = 64 * 1024
MAX_JWT_FILE = 16 * 1024
MIN_POLL = 0.1  # seconds between polls when the provider says 0: never a busy loop
MAX_INTERVAL = 300  # seconds: a provider's interval of 10^9 (or 10^400) would have the CLI sleep for decades
MAX_EXPIRES = 1800  # seconds a sign-in code is waited for at most (RFC 8628's examples: 1800)
_USER_CODE = re.compile(r"[A-Za-z0-9-]{1,32}")
MAX_TOKEN_SECONDS = 7 * 86400  # an exchanged token's lifetime beyond this is not believed: it is not kept
SLOW_DOWN = 5  # RFC 8628 3.5: every slow_down adds 5 s to the interval
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a URN, not a token
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a URN, not a token
PROVIDER = "the identity provider"


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


# A redirect would carry a device code or a JWT wherever it points: refused, naming only the origins.
_OPENER = refusing_opener(lambda url, code, target: (
    f"{_origin(url)} answered {code} with a redirect to {_origin(target)}; not followed"))


def _read(response: Any) -> bytes:
    raw: bytes = response.read(MAX_BODY + 1) if response is not None else b""
    if len(raw) > MAX_BODY:
        raise RemoteUnavailable(f"{_origin(response.url)} answered with more than {MAX_BODY // 1024} KiB; refused")
    return raw


def _request(url: str, form: Mapping[str, str] | None, who: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON object or {}, lower-cased headers) of a GET, or of a form POST when `form` is given."""
    headers = {"Accept": "application/json"}
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    data = None if form is None else urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers,  # noqa: S310 - http(s) checked by callers
                                     method="GET" if form is None else "POST")
    try:
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as response:
                status, raw, answer = response.status, _read(response), response.headers
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.headers
            raw = _read(exc) if exc.fp is not None else b""
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise RemoteUnavailable(f"cannot reach {who} at {_origin(url)}: {reason}") from None
    try:
        doc = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):  # nesting deeper than the parser goes: no usable answer either
        doc = {}
    return status, doc if isinstance(doc, dict) else {}, {k.lower(): v for k, v in (answer or {}).items()}


def _error_code(doc: Mapping[str, Any]) -> str:
    """An OAuth error code, as far as it is one (RFC 6749 5.2: printable ASCII, no quote or backslash)."""
    code = doc.get("error")
    if isinstance(code, str) and 0 < len(code) <= 64 and all(c.isalnum() or c in "_-." for c in code):
        return code
    return "no error code"


def check_url(url: object, what: str, allow_http: bool) -> str:
    """An absolute https URL (http only outside prod), without credentials."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts is None or parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        rule = "an http(s) URL" if allow_http else "an https URL (http only outside SPRONGUS_ENV=prod)"
        raise ConfigError(f"{what} is not {rule}")
    return str(url)


@dataclass(frozen=True)
class Endpoints:
    issuer: str
    device_authorization: str
    token: str


def discover(issuer: str, allow_http: bool) -> Endpoints:
    """OIDC discovery at `<issuer>/.well-known/openid-configuration`: the device and token endpoints."""
    issuer = check_url(issuer, f"the issuer {issuer}", allow_http).rstrip("/")
    status, doc, _ = _request(issuer + "/.well-known/openid-configuration", None, PROVIDER)
    if status >= 500:
        raise RemoteUnavailable(f"{PROVIDER} at {_origin(issuer)} answered {status}")
    if status != 200:
        raise ConfigError(f"{issuer} has no OpenID discovery document (HTTP {status})")
    if str(doc.get("issuer", "")).rstrip("/") != issuer:
        raise ConfigError(f"the discovery document of {issuer} names another issuer")
    if not doc.get("device_authorization_endpoint"):
        raise ConfigError(f"{PROVIDER} {issuer} offers no device sign-in (no device_authorization_endpoint)")
    return Endpoints(issuer, check_url(doc["device_authorization_endpoint"], "its device endpoint", allow_http),
                     check_url(doc.get("token_endpoint"), "its token endpoint", allow_http))


@dataclass(frozen=True)
class DeviceCode:
    """RFC 8628 3.2. The device code is the provider's secret for this sign-in: never printed."""

    device_code: SecretValue
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


def _shown(value: object, what: str, allow_http: bool, url: bool = False) -> str:
    """Text the user is shown: for URLs a short http(s) URL without spaces, else a code of letters, digits and `-`
    (RFC 8628's are 8 or 9 characters): no escape codes, and no room for instructions of the provider's own ("open
    this other site", "first run this command") dressed up as ours."""
    if not isinstance(value, str) or not (_plain_url(value) if url else _USER_CODE.fullmatch(value)):
        raise ConfigError(f"{PROVIDER} answered the device request without a usable {what}")
    return check_url(value, f"its {what}", allow_http) if url else value


def _plain_url(value: str) -> bool:
    return 0 < len(value) <= 512 and value.isprintable() and not any(c.isspace() for c in value)


def start(endpoints: Endpoints, client_id: str, *, step_up: bool = False, allow_http: bool = False) -> DeviceCode:
    """Ask for a device sign-in; with `step_up` a fresh one (`max_age=0`, `prompt=login`)."""
    form = {"client_id": client_id, "scope": "openid"}
    if step_up:
        form.update(max_age="0", prompt="login")
    status, doc, _ = _request(endpoints.device_authorization, form, PROVIDER)
    if status >= 500:
        raise RemoteUnavailable(f"{PROVIDER} at {_origin(endpoints.issuer)} answered {status}")
    if status != 200:
        raise ConfigError(f"{PROVIDER} refused the device sign-in request ({_error_code(doc)}); is the API's "
                          "client id registered for the device flow?")
    code = doc.get("device_code")
    if not isinstance(code, str) or not code:
        raise ConfigError(f"{PROVIDER} answered the device request without a device code")
    complete = doc.get("verification_uri_complete")
    expires, interval = doc.get("expires_in"), doc.get("interval", 5)
    return DeviceCode(SecretValue(code), _shown(doc.get("user_code"), "user code", allow_http),
                      _shown(doc.get("verification_uri") or doc.get("verification_url"), "verification URI",
                             allow_http, url=True),
                      None if complete is None else _shown(complete, "verification URI", allow_http, url=True),
                      min(expires, MAX_EXPIRES) if isinstance(expires, int) and expires > 0 else 600,
                      min(interval, MAX_INTERVAL) if isinstance(interval, int) and interval >= 0 else 5)


def poll(endpoints: Endpoints, client_id: str, code: DeviceCode, *, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> SecretValue:
    """Poll the token endpoint (RFC 8628 3.4/3.5) until the user decides; the ID token of an approved sign-in."""
    interval, deadline = float(code.interval), clock() + code.expires_in
    form = {"grant_type": DEVICE_GRANT, "device_code": code.device_code.reveal(), "client_id": client_id}
    expired = Unauthenticated("the sign-in code expired before it was approved; run `sprongus login --oidc` again")
    while True:
        sleep(max(MIN_POLL, min(interval, deadline - clock())))
        if clock() >= deadline:
            raise expired
        status, doc, _ = _request(endpoints.token, form, PROVIDER)
        if status == 200:
            id_token = doc.get("id_token")
            if not isinstance(id_token, str) or not id_token:
                raise ConfigError(f"{PROVIDER} answered without an ID token (the `openid` scope is needed)")
            return SecretValue(id_token)
        if status >= 500:
            raise RemoteUnavailable(f"{PROVIDER} at {_origin(endpoints.issuer)} answered {status}")
        error = _error_code(doc)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN
            continue
        if error == "expired_token":
            raise expired
        if error == "access_denied":
            raise Unauthenticated("the sign-in was denied at the identity provider (access_denied)")
        raise Unauthenticated(f"{PROVIDER} refused the sign-in ({error})")


@dataclass(frozen=True)
class Exchanged:
    token: SecretValue
    expires_in: int | None


def exchange(api_url: str, subject_token: SecretValue, token_type: str) -> Exchanged:
    """RFC 8693 at the API's POST /v1/auth/token: the provider's JWT for a `spr_` token."""
    url = api_base(api_url) + "/auth/token"
    status, doc, headers = _request(url, {"grant_type": EXCHANGE_GRANT, "subject_token": subject_token.reveal(),
                                          "subject_token_type": token_type}, "the API")
    if status == 200:
        token, expires = doc.get("access_token"), doc.get("expires_in")
        if not isinstance(token, str) or not TOKEN_TEXT.fullmatch(token):
            raise RemoteUnavailable(f"the API at {_origin(url)} answered the token exchange without an API token")
        usable = isinstance(expires, int) and not isinstance(expires, bool) and 0 < expires <= MAX_TOKEN_SECONDS
        return Exchanged(SecretValue(token), expires if usable else None)  # else: used, not kept
    if status == 400 and "error" in doc:
        error = _error_code(doc)
        if error == "unsupported_grant_type":
            raise ConfigError(f"the API at {_origin(url)} does not exchange tokens ({error})")
        raise Unauthenticated(f"the identity provider's token was refused ({error})")
    if status == 404 and doc.get("type") != TYPE_PREFIX + "not-found":
        raise ConfigError(f"SPRONGUS_API_URL: {api_base(api_url)} has no token exchange (HTTP 404)")
    raise error_from_problem(status, doc, headers)


def read_jwt_file(path: Path) -> SecretValue:
    """SPRONGUS_OIDC_TOKEN_FILE: a workload's JWT (a Kubernetes projected token, a CI job's ID token)."""
    try:
        # O_NONBLOCK: a FIFO put in the file's place must be refused, not block every call until someone writes.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError(f"SPRONGUS_OIDC_TOKEN_FILE: {path} is not a regular file")
            raw = handle.read(MAX_JWT_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"SPRONGUS_OIDC_TOKEN_FILE: cannot read {path} "
                          f"({exc.strerror or type(exc).__name__})") from None
    if len(raw) > MAX_JWT_FILE:
        raise ConfigError(f"SPRONGUS_OIDC_TOKEN_FILE: {path} is larger than {MAX_JWT_FILE // 1024} KiB; "
                          "it holds no JWT")
    text = raw.decode("ascii", errors="replace").strip()
    if not raw.isascii() or text.count(".") != 2 or not text.isprintable() or " " in text:
        raise ConfigError(f"SPRONGUS_OIDC_TOKEN_FILE: {path} does not hold a JWT")
    return SecretValue(text)
