"""API tokens: opaque `spr_...` bearer tokens, stored only as a SHA-256 hash (SPEC section 7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sprongus.domain.errors import NotFound, SprongusError, ValidationError
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.scope import OWNER_ID_RULE
from sprongus.domain.values import SecretValue
from sprongus.ports.clock import Clock
from sprongus.ports.tokens import ApiTokenStore

TOKEN_PREFIX = "spr_"  # noqa: S105 - a prefix, not a token
_TTL = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
MAX_TTL = 366 * 86400


class Unauthenticated(SprongusError):
    """No, an unknown, a revoked or an expired bearer token: the API answers 401."""


class StepUpRequired(Unauthenticated):
    """The token's authentication is older than the action's max age (RFC 9470 step-up)."""

    def __init__(self, max_age: int) -> None:
        super().__init__(f"authentication older than {max_age} s; authenticate again to reveal")
        self.max_age = max_age


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    token_hash: str
    subject: str
    permissions: frozenset[Permission]
    projects: frozenset[str]
    created_at: datetime
    expires_at: datetime
    auth_time: datetime
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        """Never the token nor its hash."""
        return {"id": self.id, "subject": self.subject, "scopes": sorted(p.value for p in self.permissions),
                "projects": sorted(self.projects), "createdAt": self.created_at.isoformat(),
                "expiresAt": self.expires_at.isoformat(), "revoked": self.revoked_at is not None}


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a plain hash is enough (nothing to brute-force)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_ttl(text: str) -> int:
    """`90`, `30s`, `15m`, `1h`, `7d` -> seconds."""
    match = _TTL.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValidationError("ttl", "must be seconds or a number with a unit s, m, h or d (e.g. 90, 15m, 1h, 7d)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_TTL:
        raise ValidationError("ttl", "must be at most 366 days")
    return seconds


class TokenService:
    """Issues, authenticates, lists and revokes API tokens. Issuing is an operator action (local CLI)."""

    def __init__(self, store: ApiTokenStore, clock: Clock,
                 random_token: Callable[[], bytes] = lambda: secrets.token_bytes(32)) -> None:
        self._store = store
        self._clock = clock
        self._random = random_token

    def create(self, subject: str, scopes: list[str], projects: list[str], ttl_seconds: int) -> tuple[SecretValue,
                                                                                                      ApiToken]:
        if not _SUBJECT.fullmatch(subject or ""):
            raise ValidationError("subject", OWNER_ID_RULE)
        if not scopes:
            raise ValidationError("scope", "give at least one scope: " + ", ".join(p.value for p in Permission))
        try:
            permissions = frozenset(Permission(s) for s in scopes)
        except ValueError:
            raise ValidationError("scope", "must be one of " + ", ".join(p.value for p in Permission)) from None
        for project in projects:
            if not _SUBJECT.fullmatch(project):
                raise ValidationError("project", OWNER_ID_RULE)
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(self._random()).decode("ascii").rstrip("=")
        now = self._clock.now()
        record = ApiToken(id="tok_" + secrets.token_hex(8), token_hash=token_hash(token), subject=subject,
                          permissions=permissions, projects=frozenset(projects), created_at=now,
                          expires_at=now + timedelta(seconds=ttl_seconds), auth_time=now)
        self._store.add(record)
        return SecretValue(token), record

    def authenticate(self, bearer: str | None, request_id: str | None = None,
                     client_address: str | None = None) -> tuple[Principal, ApiToken]:
        if not bearer or not bearer.startswith(TOKEN_PREFIX):
            raise Unauthenticated("a valid bearer token is required")
        record = self._store.find(token_hash(bearer))
        now = self._clock.now()
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            raise Unauthenticated("the bearer token is unknown, revoked or expired")
        if not hmac.compare_digest(record.token_hash, token_hash(bearer)):
            raise Unauthenticated("the bearer token is unknown, revoked or expired")
        principal = Principal(subject=record.subject, permissions=record.permissions, projects=record.projects,
                              request_id=request_id, client_address=client_address)
        return principal, record

    def list(self) -> list[ApiToken]:
        return self._store.all()

    def revoke(self, token_id: str) -> None:
        if not self._store.revoke(token_id, self._clock.now()):
            raise NotFound(f"token {token_id} not found")


class AuthTimeVerifier:
    """The default RecentAuthVerifier: the token's auth_time must be within max_age seconds."""

    def __init__(self, max_age: int, clock: Clock) -> None:
        self.max_age = max_age
        self._clock = clock

    def check(self, token: ApiToken) -> None:
        if (self._clock.now() - token.auth_time).total_seconds() > self.max_age:
            raise StepUpRequired(self.max_age)
