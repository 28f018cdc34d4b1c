"""The client's optional in-process cache of revealed values, for `cache_ttl` seconds.

Values are held as SecretValue, so no repr, log line or traceback of the client shows one. Every reveal is
audited and rate limited on the server; a cache turns a hot path's reveals into one per key per TTL, at the price
that a value changed elsewhere is seen up to TTL seconds late. A write through the same client drops its entries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from sprongus.domain.values import SecretValue

MAX_ENTRIES = 10_000  # past this, expired entries are dropped before a new one is added


class RevealCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], tuple[float, SecretValue]] = {}  # (scope, key) -> (expiry, value)
        self._listings: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}  # (scope, prefix) -> keys
        # Bumped by every forget and clear. A reveal takes a ticket before it asks the API and stores its answer
        # only if nothing was forgotten meanwhile: a reveal still in flight when this client wrote would
        # otherwise cache the old value, with a fresh TTL, just after the write dropped it.
        self._generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def __repr__(self) -> str:
        return f"RevealCache(ttl={self.ttl}, entries={len(self._values)})"

    def get(self, scope: str, key: str) -> SecretValue | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._values.get((scope, key))
            return entry[1] if entry is not None and entry[0] > self._clock() else None

    def get_prefix(self, scope: str, prefix: str) -> dict[str, SecretValue] | None:
        """What a reveal by this prefix answered, while it and every value in it are fresh."""
        if not self.enabled:
            return None
        with self._lock:
            now = self._clock()
            listing = self._listings.get((scope, prefix))
            if listing is None or listing[0] <= now:
                return None
            entries = [(key, self._values.get((scope, key))) for key in listing[1]]
            if any(entry is None or entry[0] <= now for _, entry in entries):
                return None
            return {key: entry[1] for key, entry in entries if entry is not None}

    def ticket(self) -> int:
        """Taken before a reveal is sent; `put` needs it."""
        with self._lock:
            return self._generation

    def put(self, scope: str, values: dict[str, SecretValue], ticket: int, prefix: str | None = None) -> None:
        if not self.enabled:
            return
        with self._lock:
            if ticket != self._generation:  # a write (or clear) happened while this reveal was on its way
                return
            expiry = self._clock() + self.ttl
            if len(self._values) + len(values) > MAX_ENTRIES:
                self._drop_expired()
            self._values.update(((scope, key), (expiry, value)) for key, value in values.items())
            if prefix is not None:
                self._listings[(scope, prefix)] = (expiry, tuple(values))

    def forget(self, scope: str, keys: Iterable[str]) -> None:
        """After a write: the keys, and every prefix listing of the scope that could hold them, are read anew."""
        with self._lock:
            self._generation += 1
            for key in keys:
                self._values.pop((scope, key), None)
                for listed in [p for s, p in self._listings if s == scope and key.startswith(p)]:
                    del self._listings[(scope, listed)]

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._values.clear()
            self._listings.clear()

    def _drop_expired(self) -> None:
        now = self._clock()
        self._values = {k: v for k, v in self._values.items() if v[0] > now}
        self._listings = {k: v for k, v in self._listings.items() if v[0] > now}
