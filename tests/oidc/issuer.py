"""A real OpenID Connect issuer on loopback: discovery, JWKS, the RFC 8628 device flow, minted and forged JWTs.

Plain HTTP on 127.0.0.1, so other processes (gunicorn workers, the CLI in a subprocess) can use it too.
`with OidcIssuer() as issuer: issuer.mint({"sub": "svc"})`; `issuer.auto_approve()` lets a CLI login finish alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.oidc.device import DEVICE_GRANT, DeviceAuthorization, DeviceGrant

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ALGORITHMS = ("RS256", "ES256", "EdDSA")
_JWK_CODECS: dict[str, Any] = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: Any  # an RSA, P-256 or Ed25519 private key from `cryptography`

    @classmethod
    def generate(cls, alg: str = "RS256", kid: str | None = None) -> SigningKey:
        if alg == "RS256":
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(f"unsupported alg {alg!r}; one of {ALGORITHMS}")
        return cls(kid or f"{alg.lower()}-{secrets.token_hex(4)}", alg, private)

    def jwk(self) -> dict[str, Any]:
        public = _JWK_CODECS[self.alg].to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, payload: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        if headers and "alg" in headers:
            raise ValueError("the header alg follows the key: pick it with alg= or kid=, or forge by hand")
        return jwt.encode(dict(payload), self.private, algorithm=self.alg,
                          headers={"typ": "JWT", "kid": self.kid, **(headers or {})})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: Mapping[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class OidcIssuer(DeviceAuthorization):
    """One issuer: `url` is its `iss`; current signing keys for RS256, ES256 and EdDSA are all in its JWKS."""

    def __init__(self, *, audience: str = "sprongus", subject: str = "alice", id_token_lifetime: int = 300) -> None:
        super().__init__()
        self.audience, self.subject, self.id_token_lifetime = audience, subject, id_token_lifetime
        self.url = ""
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.fail_jwks = False  # /jwks answers 503
        self.jwks_delay = 0.0  # seconds /jwks sleeps before answering
        self.id_tokens: list[str] = []  # every id_token the token endpoint handed out
        self._current = {alg: SigningKey.generate(alg) for alg in ALGORITHMS}
        self._published = list(self._current.values())
        self._every_key = {key.kid: key for key in self._published}  # retired and unpublished keys still sign
        self._unpublished: list[SigningKey] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> OidcIssuer:
        if self._server is None:
            self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)
            self.url = f"http://127.0.0.1:{self._server.server_port}"
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,),
                                            name="oidc-issuer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- keys --------------------------------------------------------------------------------------------------

    @property
    def kid(self) -> str:
        """The current RS256 key's kid."""
        return self._current["RS256"].kid

    def current_kid(self, alg: str = "RS256") -> str:
        return self._current[alg].kid

    @property
    def published_kids(self) -> list[str]:
        return [key.kid for key in self._published]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self._published]}

    def rotate(self, keep_old: bool = True, alg: str = "RS256") -> str:
        """A new current key for `alg`, published at once; the old one stays in the JWKS unless keep_old=False."""
        new, old = SigningKey.generate(alg), self._current[alg]
        with self._state:
            self._every_key[new.kid] = new
            self._current[alg] = new
            self._published = [key for key in self._published if keep_old or key is not old] + [new]
        return new.kid

    def unpublish(self, kid: str) -> None:
        """Drops a key from the JWKS (it can still sign: tokens by it then fail to verify)."""
        with self._state:
            self._published = [key for key in self._published if key.kid != kid]

    def publish_pending_keys(self) -> list[str]:
        """Puts the keys behind `unknown_kid_token` into the JWKS; returns their kids."""
        with self._state:
            pending, self._unpublished = self._unpublished, []
            self._published = [*self._published, *pending]
        return [key.kid for key in pending]

    def _key(self, kid: str) -> SigningKey:
        if kid not in self._every_key:
            raise KeyError(f"no signing key with kid {kid!r}")
        return self._every_key[kid]

    # -- minting -----------------------------------------------------------------------------------------------

    def claims(self, claims: Mapping[str, Any] | None = None, *, lifetime: int = 300, omit: Iterable[str] = (),
               **overrides: Any) -> dict[str, Any]:
        """The default claims (iss, aud, sub, iat, nbf, exp, jti), then `claims`, then `overrides`, minus `omit`."""
        if not self.url:
            raise RuntimeError("start the issuer first: its url is the iss claim")
        now = int(time.time())
        payload = {"iss": self.url, "aud": self.audience, "sub": self.subject, "iat": now, "nbf": now,
                   "exp": now + lifetime, "jti": str(uuid.uuid4()), **(claims or {}), **overrides}
        for name in omit:
            payload.pop(name, None)
        return payload

    def mint(self, claims: Mapping[str, Any] | None = None, *, lifetime: int = 300, kid: str | None = None,
             alg: str = "RS256", headers: Mapping[str, Any] | None = None, omit: Iterable[str] = (),
             **overrides: Any) -> str:
        """A token signed by the current `alg` key (or by the key `kid`: current, retired or unpublished)."""
        key = self._key(kid) if kid else self._current[alg]
        return key.sign(self.claims(claims, lifetime=lifetime, omit=omit, **overrides), headers)

    def github_actions_token(self, repository: str = "acme/shop", ref: str = "refs/heads/main",
                             audience: str = "sprongus", *, environment: str | None = None,
                             event_name: str = "push", actor: str = "octocat", workflow: str = "Deploy",
                             **overrides: Any) -> str:
        """Shaped like token.actions.githubusercontent.com's (ids are strings there too); iss is still `url`."""
        sha = secrets.token_hex(20)
        workflow_ref = f"{repository}/.github/workflows/{workflow.lower()}.yml@{ref}"
        claims = {
            "sub": f"repo:{repository}:environment:{environment}" if environment else f"repo:{repository}:ref:{ref}",
            "aud": audience, "ref": ref, "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
            "sha": sha, "repository": repository, "repository_id": str(secrets.randbelow(10**9)),
            "repository_owner": repository.split("/")[0], "repository_owner_id": str(secrets.randbelow(10**8)),
            "repository_visibility": "private", "run_id": str(secrets.randbelow(10**10)), "run_number": "42",
            "run_attempt": "1", "actor": actor, "actor_id": str(secrets.randbelow(10**8)), "workflow": workflow,
            "workflow_ref": workflow_ref, "workflow_sha": sha, "job_workflow_ref": workflow_ref,
            "job_workflow_sha": sha, "event_name": event_name, "head_ref": "", "base_ref": "",
            "runner_environment": "github-hosted", **({"environment": environment} if environment else {}),
        }
        return self.mint(claims, **overrides)

    def kubernetes_token(self, namespace: str = "shop", service_account: str = "worker", audience: str = "sprongus",
                         *, pod: str | None = None, **overrides: Any) -> str:
        """Shaped like a projected service-account token (aud is a list there; the SA uid is stable per name)."""
        claims = {
            "sub": f"system:serviceaccount:{namespace}:{service_account}", "aud": [audience],
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account,
                                   "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sa:{namespace}/{service_account}"))},
                "pod": {"name": pod or f"{service_account}-5d8c7b9f6-x2k4q", "uid": str(uuid.uuid4())},
                "node": {"name": "node-1", "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "node-1"))},
            },
        }
        return self.mint(claims, **overrides)

    # -- forgeries ---------------------------------------------------------------------------------------------

    def unsigned_token(self, claims: Mapping[str, Any] | None = None, **overrides: Any) -> str:
        """alg "none", empty signature, the current kid."""
        header = {"alg": "none", "typ": "JWT", "kid": self.kid}
        return f"{_segment(header)}.{_segment(self.claims(claims, **overrides))}."

    def hs256_with_public_key(self, claims: Mapping[str, Any] | None = None, **overrides: Any) -> str:
        """Algorithm confusion: HS256 keyed with the PEM of the current RSA public key, which anyone can fetch."""
        pem = self._current["RS256"].private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{_segment(header)}.{_segment(self.claims(claims, **overrides))}"
        return f"{signing_input}.{_b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"

    def foreign_token(self, claims: Mapping[str, Any] | None = None, *, alg: str = "RS256", **overrides: Any) -> str:
        """Signed by a key that is not in the JWKS, under the current key's kid."""
        return SigningKey.generate(alg, kid=self._current[alg].kid).sign(self.claims(claims, **overrides))

    def unknown_kid_token(self, claims: Mapping[str, Any] | None = None, *, alg: str = "RS256",
                          **overrides: Any) -> str:
        """Signed by a new key whose kid is not published yet (`publish_pending_keys` publishes it)."""
        key = SigningKey.generate(alg)
        with self._state:
            self._unpublished.append(key)
            self._every_key[key.kid] = key
        return key.sign(self.claims(claims, **overrides))

    # -- HTTP --------------------------------------------------------------------------------------------------

    def _tokens_for(self, grant: DeviceGrant) -> dict[str, Any]:
        email = {"email": grant.email, "email_verified": True} if grant.email else {}
        id_token = self.mint({"aud": grant.client_id, "sub": grant.subject, "auth_time": grant.auth_time, **email},
                             lifetime=self.id_token_lifetime)
        with self._state:
            self.id_tokens.append(id_token)
        return {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
                "expires_in": self.id_token_lifetime, "id_token": id_token, "scope": grant.scope}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url, "jwks_uri": f"{self.url}/jwks", "token_endpoint": f"{self.url}/token",
            "device_authorization_endpoint": f"{self.url}/device/authorize",
            "authorization_endpoint": f"{self.url}/authorize",  # required by OIDC Discovery; not served
            "grant_types_supported": [DEVICE_GRANT], "response_types_supported": ["code"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "token_endpoint_auth_methods_supported": ["none"], "scopes_supported": ["openid", "email", "profile"],
            "claims_supported": ["iss", "aud", "sub", "iat", "exp", "nbf", "jti", "auth_time", "email"],
        }

    def _serve_discovery(self, request: Request) -> tuple[int, dict[str, Any]]:
        with self._state:
            self.discovery_fetches += 1
        return 200, self.discovery()

    def _serve_jwks(self, request: Request) -> tuple[int, dict[str, Any]]:
        with self._state:
            self.jwks_fetches += 1
        time.sleep(self.jwks_delay)
        return (503, {"error": "temporarily_unavailable"}) if self.fail_jwks else (200, self.jwks())

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        routes: dict[tuple[str, str], Callable[[Request], tuple[int, dict[str, Any]]]] = {
            ("GET", "/.well-known/openid-configuration"): self._serve_discovery,
            ("GET", "/jwks"): self._serve_jwks,
            ("POST", "/device/authorize"): lambda r: self._device_authorize(r.form.to_dict()),
            ("POST", "/token"): lambda r: self._device_token(r.form.to_dict()),
            ("GET", "/device"): lambda r: (200, {"message": "a browser would ask for the user code here"}),
        }
        handler = routes.get((request.method, request.path))
        status, body = handler(request) if handler else (404, {"error": "not_found"})
        response = Response(json.dumps(body), status, content_type="application/json",
                            headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
        return response(environ, start_response)
