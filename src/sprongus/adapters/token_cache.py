"""A short memory of looked-up API tokens, so a busy worker does not ask the database about the same bearer on
every request (on Postgres that was one of a masked read's round trips).

The bound: a token revoked by another process (another worker, `sprongus tokens revoke`) is refused by this one
at most `ttl` seconds later. A revocation through this process's store is honoured at once: it empties the memory.
Expiry is not cached: the service compares `expires_at` with its clock on every request. Only tokens found are
kept (an unknown bearer always asks the store, so guessing fills nothing), at most `entries` of them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from sprongus.domain.api_token import ApiToken
from sprongus.ports.tokens import ApiTokenStore


class CachingApiTokenStore:
    def __init__(self, inner: ApiTokenStore, ttl: float, entries: int = 10_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._now = now
        self._ttl = ttl
        self._entries = entries
        self._kept: OrderedDict[str, tuple[float, ApiToken]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every revocation through this store: a lookup that began before it must not keep what it read
        # (it may be the record from before the revocation, which would then outlive it by up to `ttl`).
        self._generation = 0

    def find(self, token_hash: str) -> ApiToken | None:
        now = self._now()
        with self._lock:
            kept = self._kept.get(token_hash)
            generation = self._generation
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1]
        record = self._inner.find(token_hash)
        with self._lock:
            if record is None or record.revoked_at is not None or generation != self._generation:
                self._kept.pop(token_hash, None)
                return record
            self._kept[token_hash] = (now, record)
            self._kept.move_to_end(token_hash)
            while len(self._kept) > self._entries:
                self._kept.popitem(last=False)
        return record

    def add(self, token: ApiToken) -> None:
        self._inner.add(token)

    def all(self) -> list[ApiToken]:
        return self._inner.all()

    def revoke(self, token_id: str, when: datetime) -> bool:
        try:
            return self._inner.revoke(token_id, when)
        finally:
            self.forget()  # by id: the hash is not known here, so everything goes

    def revoke_by_hash(self, token_hash: str, when: datetime) -> bool:
        try:
            return self._inner.revoke_by_hash(token_hash, when)
        finally:
            with self._lock:
                self._kept.pop(token_hash, None)
                self._generation += 1

    def forget(self) -> None:
        with self._lock:
            self._kept.clear()
            self._generation += 1
