"""Stores for identity federation: the operator's trusts, and the JWTs already exchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

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

    def release(self, jti_hash: str) -> None:
        """Forget a claim whose exchange then failed (an outage): the JWT was not spent, a retry may use it."""
        ...


class JwtVerifier(Protocol):
    """Reads and verifies an identity provider's JWTs (JOSE and the JWKS fetching live in the adapter).

    Both methods raise InvalidGrant for a token that is not well formed, not signed by the issuer's published keys,
    or signed with an algorithm other than RS256, ES256 or EdDSA; Unavailable when the issuer's keys cannot be
    fetched. Neither ever puts the token in an error or a log line.
    """

    def issuer_of(self, token: str) -> str:
        """The unverified `iss` claim, only to choose the trusts to verify against."""
        ...

    def verify(self, token: str, issuer: str, jwks_url: str | None) -> dict[str, Any]:
        """The claims, once the signature checks out against the issuer's keys (`jwks_url`, else the `jwks_uri` of
        the issuer's OpenID discovery document) and `iss` equals `issuer` (or `issuer` and one trailing slash).
        Audience, times and claim rules are the caller's to check."""
        ...
