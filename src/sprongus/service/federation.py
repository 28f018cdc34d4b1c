"""Identity federation: an identity provider's JWT exchanged for an API token under the operator's trusts (OAuth 2.0
Token Exchange, RFC 8693), and what a token holder may do with its own token (who am I, revoke it).

Every refusal of a JWT is one InvalidGrant whatever its cause, so a caller learns nothing about which check failed;
the precise reason goes to the audit trail and the server log, never the JWT itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sprongus.domain.api_token import ApiToken, token_hash
from sprongus.domain.errors import (
    AuditUnavailable,
    InvalidGrant,
    InvalidTokenRequest,
    RateLimited,
    RateLimitStoreUnavailable,
    SprongusError,
    UnsupportedGrantType,
    ValidationError,
)
from sprongus.domain.principal import ANONYMOUS, Principal, TokenKind
from sprongus.domain.records import AuditAction, Outcome
from sprongus.domain.trust import MAX_TTL, Trust
from sprongus.domain.values import SecretValue
from sprongus.ports.identity import JwtReplayStore, JwtVerifier, TrustStore
from sprongus.ports.tokens import ApiTokenStore
from sprongus.service.auditing import outcome_of
from sprongus.service.deps import ServiceDeps
from sprongus.service.tokens import TokenService, valid_exchanged_subject

log = logging.getLogger("sprongus.federation")

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN, not a secret
SUBJECT_TOKEN_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN, not a secret
MAX_SUBJECT_TOKEN = 16 * 1024  # far above any real ID or workload token; a bigger one is refused unread
LEEWAY = 60  # seconds of clock skew allowed for nbf and iat (never for exp: see _check_times)
_LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_UNKNOWN_AUTH_TIME = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The parameters of a token request as the client sent them. `refused` is what the endpoint found wrong before
    it read them (a body too large, a parameter given twice), so that refusal is throttled and audited too."""

    grant_type: str | None = None
    subject_token: str | None = field(default=None, repr=False)  # a credential: never in a repr
    subject_token_type: str | None = None
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Exchanged:
    token: SecretValue
    record: ApiToken
    expires_in: int

    @property
    def scope(self) -> str:
        return " ".join(sorted(p.value for p in self.record.permissions))


class TokenExchange:
    """POST /v1/auth/token: throttle, read the request, verify the JWT, choose the trust, refuse a replay, issue."""

    def __init__(self, deps: ServiceDeps, trusts: TrustStore, replay: JwtReplayStore, verifier: JwtVerifier,
                 tokens: TokenService) -> None:
        self._d = deps
        self._trusts = trusts
        self._replay = replay
        self._verifier = verifier
        self._tokens = tokens

    def exchange(self, request: TokenRequest, client_address: str | None,
                 request_id: str | None = None) -> Exchanged:
        caller = Principal(ANONYMOUS, request_id=request_id, client_address=client_address)
        chosen: list[str] = []  # the trust the JWT came closest to, for the audit row of a refusal
        try:
            return self._exchange(request, caller, chosen)
        except SprongusError as exc:
            self._refused(caller, exc, chosen[-1] if chosen else None)
            raise

    def _exchange(self, request: TokenRequest, caller: Principal, chosen: list[str]) -> Exchanged:
        self._d.throttle.address("exchange", caller.client_address)  # before any work, whatever the request holds
        token = _subject_token(request)
        issuer = self._verifier.issuer_of(token)
        # No trust has an issuer longer than 2,048 characters or with control characters (a NUL would make the
        # database refuse the query: a 503 instead of the refusal it is).
        plausible = len(issuer) <= 2048 and issuer.isprintable()
        trusts = sorted(self._trusts.by_issuer(issuer.rstrip("/") or issuer), key=lambda t: t.name) \
            if plausible else []
        if not trusts:
            raise InvalidGrant("no trust for the issuer")
        now = self._d.clock.now()
        trust, claims = self._match(token, trusts, now, chosen)
        subject = _subject(trust, claims)
        exp = float(claims["exp"])
        replay_key = _replay_key(claims, token)
        if not self._replay.claim(replay_key, datetime.fromtimestamp(exp, UTC), now):
            raise InvalidGrant("already exchanged (replay)")
        ttl = min(trust.ttl_seconds, MAX_TTL)
        if trust.kind is TokenKind.USER:  # a person's session ends with the sign-in it came from
            ttl = min(ttl, int(exp - now.timestamp()))
        if ttl < 1:
            raise InvalidGrant("the JWT expires within a second")
        try:
            return self._issue(trust, subject, claims, caller, now, ttl)
        except Exception as exc:
            if not isinstance(exc, InvalidGrant):  # an outage, not a fault of the JWT: it is not spent
                with contextlib.suppress(Exception):
                    self._replay.release(replay_key)
            raise

    def _issue(self, trust: Trust, subject: str, claims: dict[str, Any], caller: Principal, now: datetime,
               ttl: int) -> Exchanged:
        try:
            secret, record = self._tokens.issue(subject, sorted(trust.scopes), sorted(trust.projects),
                                                now + timedelta(seconds=ttl), _auth_time(claims, now), trust.kind,
                                                trust.name, trust.key_prefix)
        except ValidationError as exc:  # a stored trust that no longer passes the rules: the operator must fix it
            raise InvalidGrant(f"trust {trust.name} makes no valid token ({exc.field})") from None
        who = Principal(subject, request_id=caller.request_id, client_address=caller.client_address, kind=trust.kind)
        try:
            # Fail closed: without its audit row the token is never handed out, and its row is revoked.
            self._d.auditor.record(who, AuditAction.EXCHANGE, None, None, None, Outcome.SUCCESS, trust=trust.name,
                                   tokenId=record.id, kind=trust.kind.value, expiresIn=ttl)
        except Exception:
            with contextlib.suppress(Exception):  # best effort: its plaintext was never shown to anyone
                self._tokens.revoke_issued(record)
            raise
        return Exchanged(secret, record, ttl)

    def _match(self, token: str, trusts: list[Trust], now: datetime,
               chosen: list[str]) -> tuple[Trust, dict[str, Any]]:
        """The first trust, by name, whose audience the JWT names and whose claim rules it meets. The signature is
        checked once per key set (trusts of one issuer normally share it)."""
        verified: dict[str | None, dict[str, Any]] = {}
        reason = "aud names no trust of the issuer"
        for trust in trusts:
            if trust.jwks_url not in verified:
                verified[trust.jwks_url] = self._verifier.verify(token, trust.issuer, trust.jwks_url)
                _check_times(verified[trust.jwks_url], now)
            claims = verified[trust.jwks_url]
            if not _names_audience(claims.get("aud"), trust.audience):
                continue
            chosen.append(trust.name)
            if trust.admits(claims):
                return trust, claims
            reason = f"claims fail the rules of trust {trust.name}"
        raise InvalidGrant(reason)

    def _refused(self, caller: Principal, exc: SprongusError, trust: str | None) -> None:
        """Audit a refusal (a denial, for every fault of the request or its JWT) and log its precise reason; one
        past the per-address limit is neither."""
        if isinstance(exc, RateLimited | RateLimitStoreUnavailable):
            return  # neither logged nor audited: anyone can send one; the window's audited refusals are the evidence
        if isinstance(exc, InvalidTokenRequest | InvalidGrant):
            outcome, reason = Outcome.DENIED, exc.message
        else:
            outcome, reason = outcome_of(exc), type(exc).__name__
        log.info("token exchange refused: %s (trust %s, client %s, request %s)", reason, trust,
                 caller.client_address, caller.request_id)
        try:
            self._d.auditor.record(caller, AuditAction.EXCHANGE, None, None, None, outcome, trust=trust,
                                   reason=reason)
        except AuditUnavailable:  # the refusal stands either way; an outage usually took the audit store with it
            log.warning("could not audit a refused token exchange (request %s)", caller.request_id)


def _subject_token(request: TokenRequest) -> str:
    if request.refused:
        raise InvalidTokenRequest("request", request.refused)
    if not request.grant_type:
        raise InvalidTokenRequest("grant_type", "is required")
    if request.grant_type != TOKEN_EXCHANGE:
        raise UnsupportedGrantType("grant_type", f"only {TOKEN_EXCHANGE} is supported")
    token = request.subject_token
    if not token:
        raise InvalidTokenRequest("subject_token", "is required")
    if len(token) > MAX_SUBJECT_TOKEN:
        raise InvalidTokenRequest("subject_token", f"must be at most {MAX_SUBJECT_TOKEN} characters")
    if request.subject_token_type not in SUBJECT_TOKEN_TYPES:
        raise InvalidTokenRequest("subject_token_type", "must be " + " or ".join(SUBJECT_TOKEN_TYPES))
    return token


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # The range first: it compares a 400-digit int as it is, where isfinite() converts it and raises
    # OverflowError. NaN and the infinities fail the range too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _LAST_INSTANT:
        raise InvalidGrant(f"{name} is not a time")
    return float(value)


def _check_times(claims: dict[str, Any], now: datetime) -> None:
    """exp has no leeway: the replay store forgets a JWT at its exp, so one still accepted after it could be
    exchanged again."""
    current = now.timestamp()
    exp = _number(claims, "exp")
    if exp is None:
        raise InvalidGrant("no exp")
    if current >= exp:
        raise InvalidGrant("expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > current + LEEWAY:
        raise InvalidGrant("not valid yet (nbf)")
    iat = _number(claims, "iat")
    if iat is not None and iat > current + LEEWAY:
        raise InvalidGrant("issued in the future (iat)")


def _names_audience(aud: object, audience: str) -> bool:
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and audience in [a for a in aud if isinstance(a, str)]


def _subject(trust: Trust, claims: dict[str, Any]) -> str:
    value = claims.get(trust.subject_claim)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidGrant(f"subject claim {trust.subject_claim} missing or not a string")
    subject = trust.subject_prefix + str(value)
    if not valid_exchanged_subject(subject):
        raise InvalidGrant("the subject is not 1-200 printable characters without whitespace, or is "
                           f"'{ANONYMOUS}' (reserved)")
    return subject


def _replay_key(claims: dict[str, Any], token: str) -> str:
    """One JWT, one exchange: its issuer and jti, or, when it has no jti, what its signature covers (header and
    payload): the signature itself is malleable (ECDSA's (r, n - s), base64 padding) and must not make a new JWT."""
    jti = claims.get("jti")
    material = f"{claims['iss']}\x00{jti}" if isinstance(jti, str) and jti else token.rpartition(".")[0]
    return "sha256:" + hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def _auth_time(claims: dict[str, Any], now: datetime) -> datetime:
    """When the person (or workload) last authenticated: the JWT's auth_time, else (only when it has none) its iat;
    never later than now. Unknown, and taken as long ago, when that claim is missing, is not a time (a string,
    null), or lies in the future beyond the leeway: a user token then steps up before its first reveal. A bad
    auth_time never falls back to the iat, which is when the JWT was minted, not when the person signed in."""
    value = claims.get("auth_time" if "auth_time" in claims else "iat")
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 <= value <= min(_LAST_INSTANT, now.timestamp() + LEEWAY):  # the range first, as in _number
        return _UNKNOWN_AUTH_TIME
    return min(datetime.fromtimestamp(value, UTC), now)


@dataclass(frozen=True, slots=True)
class WhoAmI:
    token: ApiToken
    auth_age_seconds: int


class TokenSelfService:
    """What a token's holder may do with it over the API: ask what it is, and revoke it (logout)."""

    def __init__(self, deps: ServiceDeps, store: ApiTokenStore) -> None:
        self._d = deps
        self._store = store

    def whoami(self, token: ApiToken) -> WhoAmI:
        age = (self._d.clock.now() - token.auth_time).total_seconds()
        return WhoAmI(token, max(0, int(age)))

    def revoke(self, principal: Principal, presented: ApiToken, token: str | None = None) -> None:
        """Revokes `token` (default: the presented one) by its hash. An unknown token is no error (RFC 7009 §2.2):
        the answer must not tell whether a token exists."""
        digest = presented.token_hash if token is None else token_hash(token)
        own = hmac.compare_digest(digest, presented.token_hash)
        target = presented if own else self._store.find(digest)
        revoked = self._store.revoke_by_hash(digest, self._d.clock.now())
        self._d.auditor.record(principal, AuditAction.REVOKE, None, None, None, Outcome.SUCCESS, own=own,
                               tokenId=target.id if target is not None else None, revoked=revoked)
