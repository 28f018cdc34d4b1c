"""Trusts: which identity provider's JWTs may be exchanged for API tokens, and what those tokens may do
(docs/identity.md). A trust holds no secret: an issuer URL, an audience and claim rules."""

from __future__ import annotations

import fnmatch
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sprongus.domain.errors import ValidationError
from sprongus.domain.principal import TokenKind
from sprongus.domain.times import utc_iso

DEFAULT_TTL = 15 * 60
MAX_TTL = 12 * 3600
MAX_CLAIMS = 32
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CLAIM = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,63}")
NAME_RULE = "1-64 chars of a-z, 0-9, '.', '_', '-', starting with a letter or digit"


@dataclass(frozen=True, slots=True)
class Trust:
    """A named rule under which one OIDC issuer's JWTs are exchanged for API tokens: what a JWT must meet."""

    name: str
    issuer: str
    audience: str
    scopes: frozenset[str]
    jwks_url: str | None = None
    claims: tuple[tuple[str, str], ...] = ()  # (claim, glob): every one must match
    subject_claim: str = "sub"
    subject_prefix: str = ""
    projects: frozenset[str] = frozenset()
    key_prefix: str = ""
    ttl_seconds: int = DEFAULT_TTL
    kind: TokenKind = TokenKind.WORKLOAD
    created_at: datetime | None = field(default=None, compare=False)

    def admits(self, claims: dict[str, Any]) -> bool:
        """Every claim rule matches the claim's string value (a glob, case-sensitive), or a boolean's JSON spelling
        (`email_verified=true`: an email trust can require what the IdP verified); a missing claim, or one of
        another type, matches nothing."""
        for name, pattern in self.claims:
            value = claims.get(name)
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str) or not fnmatch.fnmatchcase(value, pattern):
                return False
        return True

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "issuer": self.issuer, "audience": self.audience, "jwksUrl": self.jwks_url,
                "claims": {name: glob for name, glob in self.claims}, "subjectClaim": self.subject_claim,
                "subjectPrefix": self.subject_prefix, "scopes": sorted(self.scopes),
                "projects": sorted(self.projects), "keyPrefix": self.key_prefix, "ttlSeconds": self.ttl_seconds,
                "kind": self.kind.value, "createdAt": utc_iso(self.created_at) if self.created_at else None}


def validate_trust_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError("name", NAME_RULE)
    return name


def validate_url(value: object, field_name: str, allow_http: bool) -> str:
    """An absolute https URL (http only outside prod, as for KMS endpoints), without credentials or fragment."""
    # urlsplit drops tabs and line breaks before parsing, and http.client refuses them when it sends: a URL that
    # passed here failed every exchange of the trust with a 500. Printable ASCII with no spaces, then.
    if not isinstance(value, str) or len(value) > 2048 or not value.isascii() or not value.isprintable() \
            or " " in value:
        raise ValidationError(field_name, "must be an absolute https URL")
    parts = urllib.parse.urlsplit(value)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password or parts.fragment:
        rule = "an absolute http(s) URL" if allow_http else "an absolute https URL (http only outside prod)"
        raise ValidationError(field_name, f"must be {rule}, without credentials or fragment")
    return value


def parse_claim_rules(rules: list[str]) -> tuple[tuple[str, str], ...]:
    """`repository=acme/shop`, `ref=refs/heads/*` -> ((claim, glob), ...)."""
    if len(rules) > MAX_CLAIMS:
        raise ValidationError("claim", f"at most {MAX_CLAIMS} claim rules")
    parsed: list[tuple[str, str]] = []
    for rule in rules:
        name, sep, glob = rule.partition("=")
        if not sep or not _CLAIM.fullmatch(name) or not glob or len(glob) > 256:
            raise ValidationError("claim", "must be CLAIM=GLOB (a claim name, '=', a non-empty glob of at most "
                                  "256 chars)")
        # Stored as one JSON object: a second rule on a claim would silently replace the first (and widen the
        # trust: `repository=acme/*` and `repository=*/shop` would keep only `*/shop`).
        if any(name == seen for seen, _ in parsed):
            raise ValidationError("claim", "give at most one rule per claim (write one glob that says it all)")
        parsed.append((name, glob))
    return tuple(parsed)


def validate_claim_name(name: object, field_name: str) -> str:
    if not isinstance(name, str) or not _CLAIM.fullmatch(name):
        raise ValidationError(field_name, "must be a claim name (letters, digits, '_', '.', ':', '/', '-')")
    return name
