"""A local HTTPS stand-in for the Azure Key Vault keys data plane, driven by the real azure-keyvault-keys SDK.

It speaks the parts of the REST API the adapter uses: the bearer challenge, GET key (JWK public material), and
wrapkey / unwrapkey with RSA-OAEP-256 (RSA keys) or A256KW (oct-HSM keys). Disabled keys behave as the service
does: GET and unwrap answer 403 KeyDisabled, wrap is still accepted. `forbid_get` and `deny_all` play a
caller without keys/get permission and a caller without any permission; `outage` an unavailable service.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TOKEN = "fake-token"
CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"'
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class FakeCredential:
    """An azure TokenCredential that hands out a fixed token, far from expiry."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken(TOKEN, int(dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp()))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_RSA_POOL: list[rsa.RSAPrivateKey] = []


def _rsa_key(index: int) -> rsa.RSAPrivateKey:
    """RSA key generation dominates the fake's cost, so vaults share a pool; within one vault keys never repeat."""
    while len(_RSA_POOL) <= index:
        _RSA_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _RSA_POOL[index]


@dataclass
class KeyVersion:
    version: str
    kty: str  # "RSA" or "oct-HSM"
    rsa_key: rsa.RSAPrivateKey | None = None
    secret: bytes | None = None
    enabled: bool = True


@dataclass
class FakeKeyVault:
    """The vault's state; `calls` lists every authenticated request as `METHOD op` (e.g. `GET key`)."""

    keys: dict[str, list[KeyVersion]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    forbid_get: bool = False
    deny_all: bool = False
    outage: int | None = None  # answer every request with this HTTP status (503: an outage, 429: throttling)
    raw_answer: Callable[[BaseHTTPRequestHandler], None] | None = None  # writes what a broken network or proxy would
    url: str = ""

    def add_version(self, name: str, kty: str = "RSA") -> str:
        version = uuid.uuid4().hex
        if kty == "RSA":
            used = sum(1 for versions in self.keys.values() for k in versions if k.rsa_key is not None)
            key = KeyVersion(version, kty, rsa_key=_rsa_key(used))
        else:
            key = KeyVersion(version, kty, secret=os.urandom(32))
        self.keys.setdefault(name, []).append(key)
        return version

    def key_id(self, name: str, version: str) -> str:
        return f"{self.url}/keys/{name}/{version}"

    def disable(self, name: str, version: str | None = None) -> None:
        self._find(name, version or self.keys[name][-1].version).enabled = False

    def count(self, call: str) -> int:
        return self.calls.count(call)

    def _find(self, name: str, version: str) -> KeyVersion:
        versions = self.keys.get(name, [])
        if not version:
            if not versions:
                raise KeyError(name)
            return versions[-1]
        for key in versions:
            if key.version == version:
                return key
        raise KeyError(version)

    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 2 or parts[0] != "keys":
            return 404, _error("NotFound", "no such route")
        name, version = parts[1], parts[2] if len(parts) > 2 else ""
        op = parts[3] if len(parts) > 3 else "key"
        self.calls.append(f"{method} {op}")
        if self.outage:
            return self.outage, _error("ServiceUnavailable", "The service is unavailable.")
        if self.deny_all:
            return 403, _error("Forbidden", "Caller is not authorized to perform action on resource.",
                               "ForbiddenByRbac")
        try:
            key = self._find(name, version)
        except KeyError:
            return 404, _error("KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        if method == "GET" and op == "key":
            if self.forbid_get:
                return 403, _error("Forbidden", "The user, group or application does not have keys get permission "
                                   "on key vault 'fake'.", "ForbiddenByPolicy")
            if not key.enabled:
                return 403, _error("Forbidden", "Operation get is not allowed on a disabled key.", "KeyDisabled")
            return 200, self._bundle(name, key)
        if method == "POST" and op in ("wrapkey", "unwrapkey"):
            return self._wrap(name, key, op, body)
        return 405, _error("BadParameter", "unsupported operation")

    def _bundle(self, name: str, key: KeyVersion) -> dict[str, Any]:
        jwk: dict[str, Any] = {"kid": self.key_id(name, key.version), "kty": key.kty,
                               "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"]}
        if key.rsa_key is not None:
            numbers = key.rsa_key.public_key().public_numbers()
            jwk["n"] = b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
            jwk["e"] = b64url(numbers.e.to_bytes(3, "big"))
        now = int(dt.datetime.now(dt.UTC).timestamp())
        return {"key": jwk, "attributes": {"enabled": key.enabled, "created": now, "updated": now,
                                           "recoveryLevel": "Recoverable+Purgeable"}}

    def _wrap(self, name: str, key: KeyVersion, op: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if op == "unwrapkey" and not key.enabled:
            return 403, _error("Forbidden", "Operation unwrapKey is not allowed on a disabled key.", "KeyDisabled")
        alg, value = body.get("alg"), unb64url(str(body.get("value", "")))
        expected = "RSA-OAEP-256" if key.kty == "RSA" else "A256KW"
        if alg != expected:
            return 400, _error("BadParameter", f"Algorithm {alg} is not supported for this key.")
        try:
            if key.rsa_key is not None:
                out = (key.rsa_key.public_key().encrypt(value, OAEP) if op == "wrapkey"
                       else key.rsa_key.decrypt(value, OAEP))
            else:
                assert key.secret is not None
                out = aes_key_wrap(key.secret, value) if op == "wrapkey" else aes_key_unwrap(key.secret, value)
        except (ValueError, InvalidUnwrap):
            return 400, _error("BadParameter", "The parameter is incorrect.")
        return 200, {"kid": self.key_id(name, key.version), "value": b64url(out)}


def _error(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, _error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                       {"WWW-Authenticate": CHALLENGE})
            return
        if self.server.vault.raw_answer is not None:
            self.server.vault.raw_answer(self)
            return
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._send(400, _error("BadParameter", "malformed JSON"))
            return
        with self.server.lock:
            status, payload = self.server.vault.handle(self.command, self.path, body)
        self._send(status, payload)

    do_GET = do_POST = _serve

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, vault: FakeKeyVault, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.vault, self.context, self.lock = vault, context, threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Nagle plus delayed ACKs would add ~40 ms to every small request/response pair.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)  # handshake in this request's own thread
        except (ssl.SSLError, OSError):
            return
        super().finish_request(tls, client_address)


def write_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (IP SAN) and localhost; returns (cert path, key path)."""
    key = generate_private_key(SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "vault-cert.pem", directory / "vault-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class FakeKeyVaultServer:
    """The fake vault served over HTTPS on a fresh port (the SDK's challenge cache is per host and port)."""

    def __init__(self, directory: Path) -> None:
        self.cert_path, key_path = write_self_signed_cert(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        self.vault = FakeKeyVault()
        self._server = _Server(self.vault, context)
        self.port = self._server.server_address[1]
        self.url = self.vault.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-key-vault",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
