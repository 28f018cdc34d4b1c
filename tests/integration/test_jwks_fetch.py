"""The JWKS and discovery fetches of the PyJWT adapter, against a real HTTP server on loopback: no redirect is
followed, a body over 1 MiB or a non-JSON one is refused, http is refused in prod, and every failure is an outage
(Unavailable), never a verdict on the JWT."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from sprongus.adapters.jwks_pyjwt import MAX_DOCUMENT, PyJwtVerifier, fetch_json_bytes
from sprongus.domain.errors import InvalidGrant, Unavailable
from tests.integration.federation import real_now
from tests.oidc.issuer import OidcIssuer, SigningKey

BODIES = {"/big": b'{"keys": [' + b" " * MAX_DOCUMENT + b"]}", "/exact": b"{" + b" " * (MAX_DOCUMENT - 2) + b"}",
          "/text": b"<html>not json</html>", "/list": b"[]"}


class _Handler(BaseHTTPRequestHandler):
    requests: list[str] = []  # noqa: RUF012 - shared on purpose: what the server was asked, across threads

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/exact")
            self.end_headers()
            return
        body = BODIES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.requests.clear()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_a_redirect_is_not_followed(server: str) -> None:
    with pytest.raises(Unavailable):
        fetch_json_bytes(server + "/redirect")
    assert _Handler.requests == ["/redirect"]


def test_a_body_of_1_mib_is_read_and_a_larger_one_refused(server: str) -> None:
    assert len(fetch_json_bytes(server + "/exact")) == MAX_DOCUMENT
    with pytest.raises(Unavailable):
        fetch_json_bytes(server + "/big")


@pytest.mark.parametrize("path", ["/text", "/list", "/missing", "/big", "/redirect"])
def test_a_jwks_that_cannot_be_used_is_an_outage_not_an_invalid_grant(server: str, path: str) -> None:
    with OidcIssuer() as issuer:
        verifier = PyJwtVerifier(real_now(), allow_http=True)
        with pytest.raises(Unavailable):
            verifier.verify(issuer.mint(), issuer.url, server + path)


def test_a_refused_port_is_an_outage() -> None:
    with pytest.raises(Unavailable):
        fetch_json_bytes("http://127.0.0.1:9/jwks")


def test_http_urls_are_refused_unless_allowed() -> None:
    with OidcIssuer() as issuer:
        strict = PyJwtVerifier(real_now(), allow_http=False)
        with pytest.raises(Unavailable):
            strict.verify(issuer.mint(), issuer.url, issuer.url + "/jwks")
        with pytest.raises(Unavailable):
            strict.verify(issuer.mint(), issuer.url, None)  # discovery over http
        assert (issuer.jwks_fetches, issuer.discovery_fetches) == (0, 0)
        assert PyJwtVerifier(real_now(), allow_http=True).verify(issuer.mint(), issuer.url, None)["iss"] == issuer.url


def test_a_discovered_jwks_uri_must_obey_the_same_scheme_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = {"https://idp.example/.well-known/openid-configuration":
                 b'{"issuer": "https://idp.example", "jwks_uri": "http://idp.example/jwks"}'}
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return documents[url]

    with OidcIssuer() as issuer:
        verifier = PyJwtVerifier(real_now(), allow_http=False, fetch=fetch)
        with pytest.raises(Unavailable):
            verifier.verify(issuer.mint(iss="https://idp.example"), "https://idp.example", None)
    assert fetched == ["https://idp.example/.well-known/openid-configuration"]


def test_a_jwt_without_kid_uses_the_only_key_and_is_refused_when_there_are_several() -> None:
    key, other = SigningKey.generate("RS256"), SigningKey.generate("ES256")
    claims = {"iss": "https://idp.example", "exp": 4102444800}
    token = jwt.encode(claims, key.private, algorithm="RS256")  # no kid in the header
    assert "kid" not in jwt.get_unverified_header(token)

    def keys(*signing: SigningKey) -> PyJwtVerifier:
        document = json.dumps({"keys": [k.jwk() for k in signing]}).encode()
        return PyJwtVerifier(real_now(), allow_http=False, fetch=lambda url: document)

    assert keys(key).verify(token, "https://idp.example", "https://idp.example/jwks") == claims
    with pytest.raises(InvalidGrant):
        keys(key, other).verify(token, "https://idp.example", "https://idp.example/jwks")
