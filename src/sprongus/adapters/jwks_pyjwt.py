"""JwtVerifier on PyJWT: an identity provider's JWTs checked against its published keys (JWKS), fetched with the
standard library.

Only RS256, ES256 and EdDSA are accepted, checked on the header before anything else: `none` and the HMAC family
would let a token be "signed" with a public key. A JWKS is cached per URL; a kid it lacks makes one refetch (a
rotated key), and another within a minute makes none, so forged kids cannot make us hammer the issuer. Fetches
refuse redirects (a trust pins its URLs), wait at most 5 s and read at most 1 MiB; a failed fetch is an outage
(503), never a verdict on the token. Errors and log lines name the cause, never the token.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt

from sprongus.adapters.jwks_gate import FetchGate
from sprongus.domain.errors import InvalidGrant, Unavailable
from sprongus.ports.clock import Clock

log = logging.getLogger("sprongus.federation")

ALGORITHMS = ("RS256", "ES256", "EdDSA")
FETCH_TIMEOUT = 5.0
MAX_DOCUMENT = 1024 * 1024
KEYS_MAX_AGE = timedelta(minutes=15)  # a key the issuer withdrew stops verifying within this
REFETCH_INTERVAL = timedelta(minutes=1)  # at most one refetch per minute and URL for an unknown kid
# Only the signature here: the caller checks times against its own clock, audience and claims against its trusts.
_OPTIONS: Any = {"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                 "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False}

Fetch = Callable[[str], bytes]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError for the 3xx: a trust's URL must serve the document itself


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_json_bytes(url: str) -> bytes:
    """GET `url`: 200 and at most MAX_DOCUMENT bytes, else Unavailable (the cause is logged, with the URL)."""
    # The caller allowed only https (http outside prod) URLs; the opener follows no redirect to another scheme.
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "sprongus"})  # noqa: S310
    # The socket timeout bounds each read, not the fetch: a server dripping a byte at a time would hold the worker
    # as long as it liked. So the whole body must arrive by a deadline too.
    deadline = time.monotonic() + FETCH_TIMEOUT
    try:
        with _OPENER.open(request, timeout=FETCH_TIMEOUT) as response:
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_DOCUMENT:
                if time.monotonic() > deadline:
                    raise TimeoutError("the document did not arrive in time")
                chunk: bytes = response.read1(MAX_DOCUMENT + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            body = b"".join(chunks)
    except urllib.error.HTTPError as exc:
        log.warning("identity provider fetch of %r answered %s", url, exc.code)
        raise Unavailable(f"identity provider answered {exc.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, a bad URL
        log.warning("identity provider fetch of %r failed: %s", url, type(exc).__name__)
        raise Unavailable(f"identity provider unreachable: {type(exc).__name__}") from None
    if len(body) > MAX_DOCUMENT:
        log.warning("identity provider document at %r is over %d bytes", url, MAX_DOCUMENT)
        raise Unavailable("identity provider document too large")
    return body


@dataclass
class _Keys:
    keys: list[tuple[str | None, jwt.PyJWK]]  # (kid, key)
    fetched_at: datetime
    refetched_at: datetime | None = None  # the last refetch an unknown kid caused


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, _Keys] = field(default_factory=dict)
    jwks_urls: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # issuer -> (discovered URL, when)


class PyJwtVerifier:
    """One per process, shared by its threads. `fetch` is replaceable for tests; `allow_http` only outside prod."""

    def __init__(self, clock: Clock, allow_http: bool, fetch: Fetch = fetch_json_bytes) -> None:
        self._clock = clock
        self._allow_http = allow_http
        self._fetch = FetchGate(fetch)  # a deadline the request cannot overrun, one fetch per URL (jwks_gate.py)
        self._state = _State()

    def issuer_of(self, token: str) -> str:
        _header_alg(token)
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidGrant("malformed JWT payload") from None
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise InvalidGrant("no iss claim")
        return issuer

    def verify(self, token: str, issuer: str, jwks_url: str | None) -> dict[str, Any]:
        alg = _header_alg(token)
        key = self._key(jwks_url or self._discover(issuer), _header_kid(token))
        if key.algorithm_name != alg:  # the key decides the algorithm, never the token's header
            raise InvalidGrant(f"header alg {alg} does not match the key's")
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg], options=_OPTIONS)
        except jwt.InvalidSignatureError:
            raise InvalidGrant("bad signature") from None
        except jwt.PyJWTError as exc:
            raise InvalidGrant(f"undecodable JWT ({type(exc).__name__})") from None
        if not _same_issuer(claims.get("iss"), issuer):
            raise InvalidGrant("iss differs from the trust's issuer")
        return claims

    # -- keys ----------------------------------------------------------------------------------------------------

    def _key(self, url: str, kid: str | None) -> jwt.PyJWK:
        now = self._clock.now()
        with self._state.lock:
            cached = self._state.keys.get(url)
        if cached is None or now - cached.fetched_at >= KEYS_MAX_AGE:
            cached = self._load_keys(url, now, None)
            key = _pick(cached.keys, kid)
            if key is None:  # just fetched: a refetch would tell nothing new, so this counts as the minute's one
                with self._state.lock:
                    cached.refetched_at = now
                raise InvalidGrant("kid not in the issuer's keys")
            return key
        key = _pick(cached.keys, kid)
        if key is not None:
            return key
        with self._state.lock:  # claim the one refetch of this minute before fetching, so threads do not pile up
            if cached.refetched_at is not None and now - cached.refetched_at < REFETCH_INTERVAL:
                raise InvalidGrant("kid not in the issuer's keys (refetched less than a minute ago)")
            cached.refetched_at = now
        key = _pick(self._load_keys(url, now, now).keys, kid)
        if key is None:
            raise InvalidGrant("kid not in the issuer's keys, even refetched")
        return key

    def _load_keys(self, url: str, now: datetime, refetched_at: datetime | None) -> _Keys:
        document = self._document(url)
        entries = document.get("keys")
        if not isinstance(entries, list):
            log.warning("JWKS at %r has no keys list", url)
            raise Unavailable("identity provider keys malformed")
        keys: list[tuple[str | None, jwt.PyJWK]] = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWTError, ValueError, KeyError, TypeError):
                continue  # a key type or curve we do not verify with: ignore it, as PyJWKSet does
            if key.algorithm_name in ALGORITHMS:
                kid = entry.get("kid")
                keys.append((kid if isinstance(kid, str) else None, key))
        loaded = _Keys(keys, now, refetched_at)
        with self._state.lock:
            self._state.keys[url] = loaded
        return loaded

    def _discover(self, issuer: str) -> str:
        """The issuer's jwks_uri from its discovery document, which must name the same issuer."""
        now = self._clock.now()
        with self._state.lock:
            known = self._state.jwks_urls.get(issuer)
        if known is not None and now - known[1] < KEYS_MAX_AGE:
            return known[0]
        document = self._document(issuer.rstrip("/") + "/.well-known/openid-configuration")
        jwks_uri = document.get("jwks_uri")
        if not _same_issuer(document.get("issuer"), issuer) or not isinstance(jwks_uri, str):
            log.warning("discovery document of %r names another issuer or no jwks_uri", issuer)
            raise Unavailable("identity provider discovery document does not match the trust")
        with self._state.lock:
            self._state.jwks_urls[issuer] = (jwks_uri, now)
        return jwks_uri

    def _document(self, url: str) -> dict[str, Any]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in (("https", "http") if self._allow_http else ("https",)) or not parts.hostname:
            log.warning("refusing to fetch %r: https only (http outside prod)", url)
            raise Unavailable("identity provider URL refused")
        try:
            document = json.loads(self._fetch(url))
        except ValueError:
            log.warning("identity provider document at %r is not JSON", url)
            raise Unavailable("identity provider document malformed") from None
        if not isinstance(document, dict):
            log.warning("identity provider document at %r is not a JSON object", url)
            raise Unavailable("identity provider document malformed")
        return document


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidGrant("malformed JWT header") from None


def _header_alg(token: str) -> str:
    alg = _header(token).get("alg")
    if alg not in ALGORITHMS:
        raise InvalidGrant("alg not allowed (RS256, ES256, EdDSA only)")
    return str(alg)


def _header_kid(token: str) -> str | None:
    kid = _header(token).get("kid")
    return kid if isinstance(kid, str) else None


def _pick(keys: list[tuple[str | None, jwt.PyJWK]], kid: str | None) -> jwt.PyJWK | None:
    """The key named by `kid`; without a kid, the issuer's only key (several would leave the choice open)."""
    if kid is None:
        return keys[0][1] if len(keys) == 1 else None
    return next((key for key_id, key in keys if key_id == kid), None)


def _same_issuer(claimed: object, issuer: str) -> bool:
    """Exact, but for one trailing slash: trusts are stored without it (`sprongus auth trust add` strips it), while
    some providers' `iss` ends with one (Auth0's does)."""
    return isinstance(claimed, str) and claimed in (issuer, issuer + "/")
