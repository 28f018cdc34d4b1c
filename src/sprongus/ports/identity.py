"""Stores for identity federation: the operator's trusts, and the JWTs already exchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sprongus.domain.trust import Trust


class TrustStore(Protocol):
    """Trusts by name. Written by operators (local CLI), read by the API on every exchange."""

    def add(self, trust: Trust) -> None:
        """Raises Conflict when a trust of that name exists."""
        ...

    def get(self, name: str) -> Trust | None: ...

    def by_issuer(self, issuer: str) -> list[Trust]: ...

    def all(self) -> list[Trust]: ...

    def remove(self, name: str) -> bool: ...


class JwtReplayStore(Protocol):
    """Hashes of exchanged JWT ids, kept until the JWT expires, shared by every worker."""

    def claim(self, jti_hash: str, expires_at: datetime, now: datetime) -> bool:
        """True the first time a hash is claimed; False if it was claimed before and has not expired."""
        ...
