"""The CLI's sign-in client (adapters/oidc_device.py) over real HTTP on loopback: OIDC discovery and the RFC 8628
device flow against the test issuer, and the RFC 8693 exchange's answers from a server that replays canned ones
(the real API's exchange is exercised by tests/e2e/test_cli_oidc_login.py)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest

from sprongus.adapters import oidc_device as oidc
from sprongus.domain.errors import (
    ConfigError,
    RateLimited,
    RemoteUnavailable,
    SprongusError,
    Unauthenticated,
    Unavailable,
    ValidationError,
)
from sprongus.domain.values import SecretValue
from tests.oidc.issuer import OidcIssuer

CLIENT = "sprongus-cli"


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as running:
        running.poll_interval = 0
        yield running


class FakeTime:
    """sleep() advances a clock instead of waiting; every wait is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def _claims(token: SecretValue) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token.reveal(), options={"verify_signature": False})
    return claims


def test_discovery_finds_the_device_and_token_endpoints(issuer: OidcIssuer) -> None:
    endpoints = oidc.discover(issuer.url + "/", allow_http=True)

    assert endpoints == oidc.Endpoints(issuer.url, f"{issuer.url}/device/authorize", f"{issuer.url}/token")


def test_an_http_issuer_is_refused_in_prod(issuer: OidcIssuer) -> None:
    with pytest.raises(ConfigError, match="https URL"):
        oidc.discover(issuer.url, allow_http=False)
    assert issuer.discovery_fetches == 0  # refused before any request


def test_a_discovery_document_naming_another_issuer_is_refused(issuer: OidcIssuer) -> None:
    with pytest.raises(ConfigError, match=r"has no OpenID discovery document \(HTTP 404\)"):
        oidc.discover(issuer.url + "/realms/other", allow_http=True)
    issuer.url, real = issuer.url.replace("127.0.0.1", "localhost"), issuer.url
    try:
        with pytest.raises(ConfigError, match="names another issuer"):
            oidc.discover(real, allow_http=True)
    finally:
        issuer.url = real


def test_the_device_flow_polls_until_approved_and_returns_the_id_token(issuer: OidcIssuer) -> None:
    issuer.auto_approve(subject="alice", after_polls=1)
    endpoints = oidc.discover(issuer.url, allow_http=True)
    code = oidc.start(endpoints, CLIENT, allow_http=True)
    clock = FakeTime()

    id_token = oidc.poll(endpoints, CLIENT, code, sleep=clock.sleep, clock=clock.clock)

    assert _claims(id_token)["sub"] == "alice" and _claims(id_token)["aud"] == CLIENT
    assert issuer.device_requests[-1] == {"client_id": CLIENT, "scope": "openid"}
    assert code.verification_uri == f"{issuer.url}/device"
    assert code.verification_uri_complete == f"{issuer.url}/device?user_code={code.user_code}"
    assert clock.waits == [oidc.MIN_POLL, oidc.MIN_POLL]  # pending, then approved; interval 0 is no busy loop
    assert code.device_code.reveal() not in repr(code)


def test_step_up_asks_for_a_fresh_sign_in(issuer: OidcIssuer) -> None:
    endpoints = oidc.discover(issuer.url, allow_http=True)
    oidc.start(endpoints, CLIENT, step_up=True, allow_http=True)

    assert issuer.device_requests[-1] == {"client_id": CLIENT, "scope": "openid", "max_age": "0",
                                          "prompt": "login"}


def test_slow_down_adds_five_seconds_to_the_interval(issuer: OidcIssuer) -> None:
    issuer.poll_interval = 2
    issuer.auto_approve(after_polls=1)
    issuer.slow_down_once = True
    endpoints = oidc.discover(issuer.url, allow_http=True)
    code = oidc.start(endpoints, CLIENT, allow_http=True)
    clock = FakeTime()

    oidc.poll(endpoints, CLIENT, code, sleep=clock.sleep, clock=clock.clock)

    assert clock.waits == [2, 7, 7]  # slow_down, then pending at the new interval, then approved


def test_a_denied_sign_in_is_refused(issuer: OidcIssuer) -> None:
    endpoints = oidc.discover(issuer.url, allow_http=True)
    code = oidc.start(endpoints, CLIENT, allow_http=True)
    issuer.deny(code.user_code)

    with pytest.raises(Unauthenticated, match=r"denied at the identity provider \(access_denied\)"):
        oidc.poll(endpoints, CLIENT, code, sleep=FakeTime().sleep)


def test_an_expired_device_code_is_refused(issuer: OidcIssuer) -> None:
    issuer.device_code_lifetime = 0  # the issuer answers expired_token
    endpoints = oidc.discover(issuer.url, allow_http=True)
    code = oidc.start(endpoints, CLIENT, allow_http=True)

    with pytest.raises(Unauthenticated, match="expired before it was approved"):
        oidc.poll(endpoints, CLIENT, code, sleep=FakeTime().sleep)


def test_polling_gives_up_when_the_code_expires(issuer: OidcIssuer) -> None:
    issuer.poll_interval, issuer.device_code_lifetime = 100, 600  # nobody approves
    endpoints = oidc.discover(issuer.url, allow_http=True)
    code = oidc.start(endpoints, CLIENT, allow_http=True)
    clock = FakeTime()

    with pytest.raises(Unauthenticated, match="expired before it was approved"):
        oidc.poll(endpoints, CLIENT, code, sleep=clock.sleep, clock=clock.clock)
    assert issuer.token_polls == 5 and sum(clock.waits) == 600  # five polls, then the deadline: no sixth


def test_an_unreachable_issuer_is_an_outage() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RemoteUnavailable, match=f"cannot reach the identity provider at http://127.0.0.1:{port}"):
        oidc.discover(f"http://127.0.0.1:{port}", allow_http=True)


# --- the exchange's answers, replayed by a canned server ------------------------------------------------------


@contextmanager
def canned(status: int, body: Any, headers: dict[str, str] | None = None) -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server answering every request with one answer; yields its URL and the request bodies it got."""
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ"


def test_the_exchange_posts_the_form_and_returns_the_api_token() -> None:
    answer = {"access_token": "spr_" + "a" * 43, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
              "token_type": "Bearer", "expires_in": 900, "scope": "secrets:read"}
    with canned(200, answer) as (url, received):
        exchanged = oidc.exchange(url + "/v1/", SecretValue(JWT), oidc.JWT_TOKEN_TYPE)

    assert exchanged.token.reveal() == answer["access_token"] and exchanged.expires_in == 900
    assert dict(pair.split("=", 1) for pair in received[0].decode().split("&")) == {
        "grant_type": "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange", "subject_token": JWT,
        "subject_token_type": "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"}


@pytest.mark.parametrize(("status", "body", "headers", "error", "message"), [
    (400, {"error": "invalid_grant", "error_description": "no trust for " + JWT}, {}, Unauthenticated,
     r"^the identity provider's token was refused \(invalid_grant\)$"),
    (400, {"error": "invalid_request"}, {}, Unauthenticated, r"refused \(invalid_request\)"),
    (400, {"error": "unsupported_grant_type"}, {}, ConfigError, "does not exchange tokens"),
    (400, {"error": "\x1b[31mred"}, {}, Unauthenticated, r"refused \(no error code\)"),
    (404, b"<html>nope</html>", {"Content-Type": "text/html"}, ConfigError, "has no token exchange"),
    (429, {"type": "urn:sprongus:problem:rate-limited", "title": "Too many requests"},
     {"Retry-After": "7", "RateLimit-Policy": '"exchange";q=60;w=60'}, RateLimited, "retry after 7 s"),
    (422, {"type": "urn:sprongus:problem:validation", "errors": {"subject_token": ["too long"]}}, {},
     ValidationError, "subject_token: too long"),
    (503, {"type": "urn:sprongus:problem:unavailable", "detail": "jwks down"}, {}, Unavailable, "jwks down"),
    (502, b"bad gateway", {"Content-Type": "text/plain"}, Unavailable, "502"),
    (200, {"access_token": "not-ours"}, {}, RemoteUnavailable, "without an API token"),
    (302, b"", {"Location": "https://elsewhere.example/v1/auth/token?x=1"}, ConfigError,
     "redirect to https://elsewhere.example; not followed"),
    (200, {"pad": "x" * oidc.MAX_BODY}, {}, RemoteUnavailable, "more than 64 KiB"),
])
def test_exchange_failures_are_one_clear_error_without_the_jwt(status: int, body: Any, headers: dict[str, str],
                                                               error: type[SprongusError], message: str) -> None:
    subject = SecretValue(JWT)
    with canned(status, body, headers) as (url, _), pytest.raises(error, match=message) as raised:
        oidc.exchange(url, subject, oidc.JWT_TOKEN_TYPE)
    assert JWT not in str(raised.value) and "signature" not in str(raised.value)


def test_reading_the_workload_token_file(tmp_path: Path) -> None:
    good, big, other, missing = (tmp_path / name for name in ("jwt", "big", "other", "missing"))
    good.write_text(JWT + "\n")
    big.write_text(JWT + "x" * oidc.MAX_JWT_FILE)
    other.write_text("hello world")

    assert oidc.read_jwt_file(good).reveal() == JWT
    for path, message in ((big, "larger than 16 KiB"), (other, "does not hold a JWT"),
                          (missing, "cannot read")):
        with pytest.raises(ConfigError, match=f"SPRONGUS_OIDC_TOKEN_FILE: .*{message}") as raised:
            oidc.read_jwt_file(path)
        assert JWT not in str(raised.value)
