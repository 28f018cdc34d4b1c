from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sprongus.domain.api_token import ApiToken

if TYPE_CHECKING:
    from sprongus.ports.identity import JwtReplayStore, TrustStore


class ApiTokenStore(Protocol):
    """API tokens by hash. The token itself is never stored."""

    def add(self, token: ApiToken) -> None: ...

    def find(self, token_hash: str) -> ApiToken | None: ...

    def all(self) -> list[ApiToken]: ...

    def revoke(self, token_id: str, when: datetime) -> bool: ...

    def revoke_by_hash(self, token_hash: str, when: datetime) -> bool:
        """Logout: the holder revokes the token it presents (the API may not revoke tokens by id)."""
        ...


@dataclass(frozen=True, slots=True)
class RevealGrant:
    """What a single-use reveal token opens: one secret, as the principal who minted it."""

    subject: str
    projects: frozenset[str]
    admin: bool
    owner_type: str
    owner_id: str | None
    key_name: str
    expires_at: datetime
    seal: str = ""  # proves the API minted it: see service/reveal_tokens.py


class RevealTokenStore(Protocol):
    """Single-use reveal tokens by hash. `consume` is atomic: of two concurrent calls, one gets the grant."""

    def add(self, token_hash: str, grant: RevealGrant) -> None: ...

    def consume(self, token_hash: str, now: datetime) -> RevealGrant | None: ...


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first answer to an Idempotency-Key, replayed to its retries."""

    status: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """An Idempotency-Key's claim: the request's fingerprint and, once done, its answer."""

    fingerprint: str
    response: StoredResponse | None  # None while the first request is still running


IDEMPOTENCY_TTL = timedelta(hours=24)
"""How long an Idempotency-Key stays claimed; after that the same key is free again."""


class IdempotencyStore(Protocol):
    """Idempotency keys per principal, shared by every worker, kept 24 h."""

    def begin(self, subject: str, key: str, fingerprint: str, now: datetime) -> IdempotencyRecord | None:
        """Claim the key (None) or return the record already there (in flight, or finished)."""
        ...

    def finish(self, subject: str, key: str, response: StoredResponse) -> None: ...

    def abandon(self, subject: str, key: str) -> None:
        """The first request failed unexpectedly: free the key so a retry can run."""
        ...


class RecentAuthVerifier(Protocol):
    """Step-up for reveals: raises StepUpRequired when the caller must authenticate again (a 2FA hook)."""

    def check(self, token: ApiToken) -> None: ...


@dataclass(frozen=True)
class ApiStores:
    """The API's stores: its tokens, reveal tokens, Idempotency-Keys, OIDC trusts and the JWTs already exchanged."""

    api_tokens: ApiTokenStore
    reveal_tokens: RevealTokenStore
    idempotency: IdempotencyStore
    trusts: TrustStore
    jwt_replay: JwtReplayStore
