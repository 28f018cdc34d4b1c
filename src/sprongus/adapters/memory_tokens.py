"""In-memory API-token, reveal-token and idempotency stores (test profile; same contract as peewee's)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime

from sprongus.domain.api_token import ApiToken
from sprongus.ports.tokens import IDEMPOTENCY_TTL, IdempotencyRecord, RevealGrant, StoredResponse


class InMemoryApiTokenStore:
    def __init__(self) -> None:
        self._tokens: dict[str, ApiToken] = {}
        self._lock = threading.Lock()

    def add(self, token: ApiToken) -> None:
        with self._lock:
            self._tokens[token.token_hash] = token

    def find(self, token_hash: str) -> ApiToken | None:
        return self._tokens.get(token_hash)

    def all(self) -> list[ApiToken]:
        return sorted(self._tokens.values(), key=lambda t: t.created_at)

    def revoke(self, token_id: str, when: datetime) -> bool:
        with self._lock:
            for digest, token in self._tokens.items():
                if token.id == token_id and token.revoked_at is None:
                    self._tokens[digest] = replace(token, revoked_at=when)
                    return True
        return False

    def revoke_by_hash(self, token_hash: str, when: datetime) -> bool:
        with self._lock:
            token = self._tokens.get(token_hash)
            if token is None or token.revoked_at is not None:
                return False
            self._tokens[token_hash] = replace(token, revoked_at=when)
            return True


class InMemoryRevealTokenStore:
    def __init__(self) -> None:
        self._grants: dict[str, RevealGrant] = {}
        self._lock = threading.Lock()

    def add(self, token_hash: str, grant: RevealGrant) -> None:
        with self._lock:
            self._grants[token_hash] = grant

    def consume(self, token_hash: str, now: datetime) -> RevealGrant | None:
        with self._lock:
            grant = self._grants.pop(token_hash, None)
        return grant if grant is not None and grant.expires_at > now else None


class InMemoryIdempotencyStore:
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], tuple[datetime, IdempotencyRecord]] = {}
        self._lock = threading.Lock()

    def begin(self, subject: str, key: str, fingerprint: str, now: datetime) -> IdempotencyRecord | None:
        with self._lock:
            found = self._records.get((subject, key))
            if found is not None and now - found[0] < IDEMPOTENCY_TTL:
                return found[1]
            self._records[(subject, key)] = (now, IdempotencyRecord(fingerprint, None))
            return None

    def finish(self, subject: str, key: str, response: StoredResponse) -> None:
        with self._lock:
            found = self._records.get((subject, key))
            if found is not None:  # like the database's UPDATE: a key nobody claimed is left alone
                self._records[(subject, key)] = (found[0], IdempotencyRecord(found[1].fingerprint, response))

    def abandon(self, subject: str, key: str) -> None:
        """Frees a key still in flight; a finished answer stays, as in the database."""
        with self._lock:
            found = self._records.get((subject, key))
            if found is not None and found[1].response is None:
                del self._records[(subject, key)]
