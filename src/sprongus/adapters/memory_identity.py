"""In-memory trust and JWT-replay stores (test profile; same contract as peewee's)."""

from __future__ import annotations

import threading
from datetime import datetime

from sprongus.domain.errors import Conflict
from sprongus.domain.trust import Trust


class InMemoryTrustStore:
    def __init__(self) -> None:
        self._trusts: dict[str, Trust] = {}
        self._lock = threading.Lock()

    def add(self, trust: Trust) -> None:
        with self._lock:
            if trust.name in self._trusts:
                raise Conflict(f"trust {trust.name} exists; remove it first")
            self._trusts[trust.name] = trust

    def get(self, name: str) -> Trust | None:
        return self._trusts.get(name)

    def by_issuer(self, issuer: str) -> list[Trust]:
        return [t for t in self.all() if t.issuer == issuer]

    def all(self) -> list[Trust]:
        return sorted(self._trusts.values(), key=lambda t: t.name)

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._trusts.pop(name, None) is not None


class InMemoryJwtReplayStore:
    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def claim(self, jti_hash: str, expires_at: datetime, now: datetime) -> bool:
        with self._lock:
            for stale in [h for h, until in self._seen.items() if until <= now]:
                del self._seen[stale]
            if jti_hash in self._seen:
                return False
            self._seen[jti_hash] = expires_at
            return True

    def release(self, jti_hash: str) -> None:
        with self._lock:
            self._seen.pop(jti_hash, None)
