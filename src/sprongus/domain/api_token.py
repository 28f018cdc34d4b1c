"""API tokens: opaque `spr_...` bearer tokens, stored only as a SHA-256 hash (docs/design.md#api)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from sprongus.domain.errors import ValidationError
from sprongus.domain.principal import Permission, TokenKind
from sprongus.domain.times import utc_iso

TOKEN_PREFIX = "spr_"  # noqa: S105 - a prefix, not a token
# What a client accepts as an API token from a token exchange: it goes into every request's header from then on.
TOKEN_TEXT = re.compile(r"spr_[A-Za-z0-9_-]{1,256}")
MAX_TTL = 366 * 86400
_TTL = re.compile(r"([0-9]+)([smhd]?)")  # ASCII digits: \d also takes other scripts' digits
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An issued API token as stored: its hash, never the token itself."""

    id: str
    token_hash: str
    subject: str
    permissions: frozenset[Permission]
    projects: frozenset[str]
    created_at: datetime
    expires_at: datetime
    auth_time: datetime
    revoked_at: datetime | None = None
    kind: TokenKind = TokenKind.OPERATOR
    trust: str | None = None  # the trust it was exchanged under (workload and user tokens)
    key_prefix: str = ""

    def to_dict(self) -> dict[str, object]:
        """Never the token nor its hash."""
        return {"id": self.id, "subject": self.subject, "kind": self.kind.value, "trust": self.trust,
                "scopes": sorted(p.value for p in self.permissions), "projects": sorted(self.projects),
                "keyPrefix": self.key_prefix, "createdAt": utc_iso(self.created_at),
                "expiresAt": utc_iso(self.expires_at), "revoked": self.revoked_at is not None}


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a plain hash is enough (nothing to brute-force)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_ttl(text: str) -> int:
    """`90`, `30s`, `15m`, `1h`, `7d` -> seconds."""
    match = _TTL.fullmatch(text.strip())
    digits = match.group(1).lstrip("0") if match else ""
    if not match or not digits:
        raise ValidationError("ttl", "must be seconds or a number with a unit s, m, h or d (e.g. 90, 15m, 1h, 7d)")
    # int() of more than 4,300 digits raised a bare ValueError ("unexpected", exit 1): such a number is too long
    seconds = int(digits) * _UNITS[match.group(2)] if len(digits) <= 12 else MAX_TTL + 1
    if seconds > MAX_TTL:
        raise ValidationError("ttl", "must be at most 366 days")
    return seconds


