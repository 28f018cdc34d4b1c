"""Issuing, authenticating, listing and revoking API tokens; the default step-up check."""

from __future__ import annotations

import base64
import hmac
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

from sprongus.domain.api_token import TOKEN_PREFIX, ApiToken, token_hash
from sprongus.domain.errors import NotFound, RepeatedRefusal, StepUpRequired, Unauthenticated, ValidationError
from sprongus.domain.names import validate_prefix
from sprongus.domain.principal import ANONYMOUS, Permission, Principal, TokenKind
from sprongus.domain.scope import OWNER_ID_RULE
from sprongus.domain.values import SecretValue
from sprongus.ports.clock import Clock
from sprongus.ports.random import RandomSource
from sprongus.ports.tokens import ApiTokenStore

if TYPE_CHECKING:
    from sprongus.service.throttle import Throttle

SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
# An exchanged token's subject is the trust's prefix and an IdP's claim ("gha:repo:acme/shop:ref:refs/heads/main"):
# any printable text without whitespace. An exchanged workload token has no user:<id> scope whatever its subject
# (Principal.personal_scope); a person's (`--kind user`) owns user:<subject>.
EXCHANGED_SUBJECT_MAX = 200
EXCHANGED_SUBJECT_RULE = (f"must be 1-{EXCHANGED_SUBJECT_MAX} printable characters without whitespace, and not "
                          f"'{ANONYMOUS}' (reserved)")


class TokenService:
    """Issues, authenticates, lists and revokes API tokens. Issuing is an operator action (local CLI)."""

    def __init__(self, store: ApiTokenStore, clock: Clock, random: RandomSource,
                 throttle: Throttle | None = None) -> None:
        self._store = store
        self._clock = clock
        self._random = random
        self._throttle = throttle

    def create(self, subject: str, scopes: list[str], projects: list[str], ttl_seconds: int,
               kind: TokenKind = TokenKind.OPERATOR, key_prefix: str = "") -> tuple[SecretValue, ApiToken]:
        """An operator's token (`tokens create`); `kind` workload exempts it from the recent-auth rule."""
        now = self._clock.now()
        return self.issue(subject, scopes, projects, now + timedelta(seconds=ttl_seconds), now, kind, None,
                          key_prefix)

    def issue(self, subject: str, scopes: list[str], projects: list[str], expires_at: datetime,
              auth_time: datetime, kind: TokenKind, trust: str | None, key_prefix: str) -> tuple[SecretValue,
                                                                                                ApiToken]:
        """A new token: the only time it exists in plaintext; the store keeps its hash."""
        kind = TokenKind(kind)
        if subject == ANONYMOUS:  # the audit trail's name for callers without a token: one with it would pass for one
            raise ValidationError("subject", f"'{ANONYMOUS}' is reserved for callers without a token")
        if kind is TokenKind.OPERATOR and not SUBJECT.fullmatch(subject or ""):
            raise ValidationError("subject", OWNER_ID_RULE)
        if kind is not TokenKind.OPERATOR and not valid_exchanged_subject(subject):
            raise ValidationError("subject", EXCHANGED_SUBJECT_RULE)
        permissions = parse_scopes(scopes)
        for project in projects:
            if not SUBJECT.fullmatch(project):
                raise ValidationError("project", OWNER_ID_RULE)
        key_prefix = validate_prefix(key_prefix, "key-prefix")
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(self._random.bytes(32)).decode("ascii").rstrip("=")
        record = ApiToken(id="tok_" + self._random.bytes(8).hex(), token_hash=token_hash(token), subject=subject,
                          permissions=permissions, projects=frozenset(projects), created_at=self._clock.now(),
                          expires_at=expires_at, auth_time=auth_time, kind=kind, trust=trust,
                          key_prefix=key_prefix)
        self._store.add(record)
        return SecretValue(token), record

    def authenticate(self, bearer: str | None, request_id: str | None = None,
                     client_address: str | None = None) -> tuple[Principal, ApiToken]:
        if not bearer or not bearer.startswith(TOKEN_PREFIX):
            self.refuse(client_address, "a valid bearer token is required")
        record = self._store.find(token_hash(bearer))
        now = self._clock.now()
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            self.refuse(client_address, "the bearer token is unknown, revoked or expired")
        if not hmac.compare_digest(record.token_hash, token_hash(bearer)):
            self.refuse(client_address, "the bearer token is unknown, revoked or expired")
        principal = Principal(subject=record.subject, permissions=record.permissions, projects=record.projects,
                              request_id=request_id, client_address=client_address, kind=record.kind,
                              key_prefix=record.key_prefix,
                              personal_scope=not (record.kind is TokenKind.WORKLOAD and record.trust is not None))
        return principal, record

    def refuse(self, client_address: str | None, why: str) -> NoReturn:
        """Raise Unauthenticated(why), the refusal counted against `unauthenticated` per client address. The API
        audits each refusal within that limit; past it, RepeatedRefusal: the same 401 (a client renews its token on
        a 401, whoever shares its address), and no audit row. Anyone can send one, so without a bound every request
        an attacker sent grew the trail by a row; the first refusals of each window are the evidence."""
        if self._throttle is not None and not self._throttle.within("unauthenticated", client_address):
            raise RepeatedRefusal(why)
        raise Unauthenticated(why)

    def revoke_issued(self, record: ApiToken) -> None:
        """Revoke a token just issued whose issuing failed after the store kept it (its audit row did not)."""
        self._store.revoke_by_hash(record.token_hash, self._clock.now())

    def list(self) -> list[ApiToken]:
        return self._store.all()

    def revoke(self, token_id: str) -> None:
        if not self._store.revoke(token_id, self._clock.now()):
            raise NotFound(f"token {token_id} not found")


def valid_exchanged_subject(subject: object) -> bool:
    """Also never the subject the audit trail gives callers without a token: a token named so would pass for one."""
    return (isinstance(subject, str) and 1 <= len(subject) <= EXCHANGED_SUBJECT_MAX and subject.isprintable()
            and not any(char.isspace() for char in subject) and subject != ANONYMOUS)


def parse_scopes(scopes: list[str]) -> frozenset[Permission]:
    if not scopes:
        raise ValidationError("scope", "give at least one scope: " + ", ".join(p.value for p in Permission))
    try:
        return frozenset(Permission(s) for s in scopes)
    except ValueError:
        raise ValidationError("scope", "must be one of " + ", ".join(p.value for p in Permission)) from None


class AuthTimeVerifier:
    """The default RecentAuthVerifier: the token's auth_time must be within max_age seconds."""

    def __init__(self, max_age: int, clock: Clock) -> None:
        self.max_age = max_age
        self._clock = clock

    def check(self, token: ApiToken) -> None:
        if token.kind is TokenKind.WORKLOAD:  # a service has no person to sign in again; its token is short-lived
            return
        if (self._clock.now() - token.auth_time).total_seconds() > self.max_age:
            raise StepUpRequired(self.max_age)
