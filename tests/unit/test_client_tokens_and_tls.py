"""The client's own inputs and its connection: a token an HTTP header cannot carry (never repeated in an error), a
revoked token's cached values, a certificate check another module turned off for the process, a base URL that
does not parse, and a job's own Idempotency-Key."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sprongus.client import Client, ConfigError, RemoteUnavailable, SecretValue, Unauthenticated, ValidationError
from tests.harness import CANARY
from tests.unit.client_fake import FakeApi, Reply, problem, record

REVEAL = "/v1/secrets/project/shop/notion.api_token:reveal"
TOKEN = "spr_" + "k" * 43
TOKEN_CANARY = "spr_CANARYTOKEN123"


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


@pytest.mark.parametrize("token", ["spr_CANARY\nTOKEN123", TOKEN_CANARY + "é", "spr_CANARY\u2028TOKEN123"])
def test_a_token_no_header_can_carry_is_refused_without_repeating_it(fake: FakeApi, token: str) -> None:
    for given in (token, SecretValue(token)):
        with pytest.raises(ConfigError) as caught:
            Client(fake.url, given)  # type: ignore[arg-type]
        assert "CANARY" not in str(caught.value) and "CANARY" not in repr(caught.value.__context__)
    assert fake.calls() == []


@pytest.mark.parametrize("access_token", [TOKEN_CANARY + "\n", TOKEN_CANARY + " x", "spr_", "bearer " + TOKEN_CANARY])
def test_an_exchanged_token_of_the_wrong_shape_is_the_servers_fault(fake: FakeApi, tmp_path: Path,
                                                                    access_token: str) -> None:
    jwt = tmp_path / "jwt"
    jwt.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    fake.always("POST", "/v1/auth/token", Reply(200, {"access_token": access_token, "token_type": "Bearer",
                                                      "expires_in": 600}))
    fake.always("POST", REVEAL, Reply(200, {**record("project:shop", "notion.api_token"), "value": CANARY}))
    client = Client(fake.url, token_file=jwt, retries=0)
    with pytest.raises(RemoteUnavailable) as caught:
        client.reveal("project:shop", "notion.api_token")
    assert "CANARY" not in str(caught.value) and fake.calls("POST", REVEAL) == []


def test_a_revoked_tokens_cached_values_are_dropped_at_its_first_refusal(fake: FakeApi) -> None:
    fake.then("POST", REVEAL, Reply(200, {**record("project:shop", "notion.api_token"), "value": CANARY}))
    fake.always("POST", REVEAL, problem(401, "unauthenticated"))
    fake.always("GET", "/v1/secrets/project/shop/other", problem(401, "unauthenticated"))
    client = Client(fake.url, TOKEN, retries=0, cache_ttl=300)
    assert client.reveal("project:shop", "notion.api_token") == CANARY
    assert client.reveal("project:shop", "notion.api_token") == CANARY  # cached: one call so far
    with pytest.raises(Unauthenticated):
        client.get("project:shop", "other")  # the token was revoked
    with pytest.raises(Unauthenticated):
        client.reveal("project:shop", "notion.api_token")  # asked again, not served from before the refusal
    assert len(fake.calls("POST", REVEAL)) == 2


@pytest.mark.parametrize("url", ["https://deploy:Hunter2CANARY\u2100@secrets.example.com", "http://[::1",
                                 "http://127.0.0.1:99999", "http://127.0.0.1:port"])
def test_a_base_url_that_does_not_parse_is_a_config_error_that_repeats_nothing(url: str) -> None:
    for make in (lambda: Client(url, TOKEN),
                 lambda: Client.from_env({"SPRONGUS_API_URL": url, "SPRONGUS_TOKEN": TOKEN})):
        with pytest.raises(ConfigError) as caught:
            make()
        assert "CANARY" not in str(caught.value) and url not in str(caught.value)


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 0, -1])
def test_a_timeout_must_be_positive_and_finite(timeout: float) -> None:
    with pytest.raises(ConfigError):
        Client("http://127.0.0.1:8000", TOKEN, timeout=timeout)


def test_a_jobs_own_idempotency_key_is_sent_on_every_run(fake: FakeApi) -> None:
    fake.always("PUT", "/v1/secrets/project/shop/k", Reply(201, record("project:shop", "k")))
    client = Client(fake.url, TOKEN, retries=0)
    for _ in range(2):
        client.set("project:shop", "k", CANARY, idempotency_key="job-42:k")
    assert [s.headers["idempotency-key"] for s in fake.calls("PUT")] == ["job-42:k", "job-42:k"]
    client.set("project:shop", "k", CANARY)
    fresh = fake.calls("PUT")[-1].headers["idempotency-key"]
    assert fresh != "job-42:k" and len(fresh) >= 24
    for bad in ("", "has space", "x" * 256, "nul\x00", "é"):
        with pytest.raises(ValidationError, match="idempotency_key"):
            client.set("project:shop", "k", CANARY, idempotency_key=bad)
    assert len(fake.calls("PUT")) == 3


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_a_process_wide_unverified_default_does_not_turn_off_the_certificate_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # What another library, a sitecustomize or PYTHONHTTPSVERIFY=0 does to the whole process:
        monkeypatch.setattr(ssl, "_create_default_https_context", ssl._create_unverified_context)
        client = Client(f"https://127.0.0.1:{server.server_address[1]}", TOKEN_CANARY, retries=0)
        with pytest.raises(RemoteUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            client.reveal("project:shop", "notion.api_token")
        assert seen == []  # the token never reached the server
    finally:
        server.shutdown()


@pytest.mark.parametrize("ttl", [float("inf"), float("nan"), -1])
def test_a_cache_ttl_must_be_finite(ttl: float) -> None:
    """An endless cache would outlive every revocation and recent-authentication window."""
    with pytest.raises(ConfigError):
        Client("http://127.0.0.1:8000", TOKEN, cache_ttl=ttl)
