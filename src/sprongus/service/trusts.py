"""The operator's trusts: which identity provider's JWTs may be exchanged, for what (docs/identity.md)."""

from __future__ import annotations

from collections.abc import Sequence

from sprongus.domain.errors import NotFound, ValidationError
from sprongus.domain.names import validate_prefix
from sprongus.domain.principal import TokenKind
from sprongus.domain.scope import OWNER_ID_RULE
from sprongus.domain.trust import (
    MAX_TTL,
    Trust,
    parse_claim_rules,
    validate_claim_name,
    validate_trust_name,
    validate_url,
)
from sprongus.ports.clock import Clock
from sprongus.ports.identity import TrustStore
from sprongus.service.tokens import SUBJECT, parse_scopes

_SUBJECT_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-:")


class TrustOps:
    """add, list and remove trusts: an operator action (local CLI, maintenance login on Postgres)."""

    def __init__(self, store: TrustStore, clock: Clock, allow_http: bool) -> None:
        self._store = store
        self._clock = clock
        self._allow_http = allow_http

    def add(self, name: str, issuer: str, audience: str, scopes: Sequence[str], *, jwks_url: str | None = None,
            claims: Sequence[str] = (), subject_claim: str = "sub", subject_prefix: str = "",
            projects: Sequence[str] = (), key_prefix: str = "", ttl_seconds: int = 15 * 60,
            kind: str = "workload") -> Trust:
        name = validate_trust_name(name)
        issuer = validate_url(issuer, "issuer", self._allow_http).rstrip("/") or issuer
        if jwks_url is not None:
            jwks_url = validate_url(jwks_url, "jwks-url", self._allow_http)
        if not isinstance(audience, str) or not 1 <= len(audience) <= 256 or not audience.isprintable():
            raise ValidationError("audience", "must be 1-256 printable characters")
        permissions = parse_scopes(list(scopes))
        for project in projects:
            if not SUBJECT.fullmatch(project):
                raise ValidationError("project", OWNER_ID_RULE)
        if len(subject_prefix) > 32 or not set(subject_prefix) <= _SUBJECT_PREFIX_CHARS:
            raise ValidationError("subject-prefix", "at most 32 chars of letters, digits, '.', '_', '@', '-', ':'")
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_TTL:
            raise ValidationError("ttl", "must be between 1 s and 12 h")
        if kind not in (TokenKind.WORKLOAD.value, TokenKind.USER.value):
            raise ValidationError("kind", "must be workload or user")
        trust = Trust(name=name, issuer=issuer, audience=audience, scopes=frozenset(p.value for p in permissions),
                      jwks_url=jwks_url, claims=parse_claim_rules(list(claims)),
                      subject_claim=validate_claim_name(subject_claim, "subject-claim"),
                      subject_prefix=subject_prefix, projects=frozenset(projects),
                      key_prefix=validate_prefix(key_prefix, "key-prefix"), ttl_seconds=ttl_seconds,
                      kind=TokenKind(kind), created_at=self._clock.now())
        self._store.add(trust)
        return trust

    def list(self) -> list[Trust]:
        return self._store.all()

    def remove(self, name: str) -> None:
        """Tokens already exchanged under it stay valid until they expire (revoke them with `tokens revoke`)."""
        if not self._store.remove(validate_trust_name(name)):
            raise NotFound(f"trust {name} not found")
