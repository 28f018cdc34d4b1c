"""An opt-in cache of unwrapped data keys in front of a KMS master-key provider (`SPRONGUS_DEK_CACHE`).

Like the AWS Encryption SDK's caching materials manager, for decryption only: a reveal whose wrapped DEK this
process unwrapped moments ago gets the same DEK back without another KMS round trip. The cache key is the exact
wrapped blob, the master key id and the AAD, so a cached DEK only ever opens the blob and context it came from (a
re-wrapped blob, e.g. after `keys rotate-master`, is a different entry). An entry lives `ttl` seconds from its KMS
call and serves at most `uses` unwraps (that call included); at most `entries` are kept, least recently used out
first. `wrap` is never cached: every new version gets a fresh DEK from the data cipher and a fresh KMS wrap.

Memory: DEKs are kept in `bytearray`s that are overwritten with zeros when an entry is dropped (expired, used up,
evicted, replaced, cleared), by the access that finds it expired, and by a daemon timer that runs while entries
exist, so an idle process does not keep keys past their ttl. Python's limit: `unwrap` returns an immutable `bytes`
copy (the KMS SDK's own response too), which cannot be wiped and lives until the garbage collector frees it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sprongus.domain.errors import ConfigError, KeyAccessDenied, KeyDisabled
from sprongus.ports.crypto import MasterKeyProvider, WrappedKey

SETTING = "SPRONGUS_DEK_CACHE"
DEFAULT_ENTRIES = 10_000
MAX_TTL = 3600.0  # seconds: a longer-lived key in memory would outlast disabling the key at the KMS by as long
MAX_USES = 2**32
MAX_ENTRIES = 1_000_000
SWEEP_EVERY = 1.0  # seconds at least between two runs of the expiry timer
_FORM = (f"{SETTING}: must be off or ttl=DURATION,uses=N[,entries=N], e.g. ttl=60s,uses=1000 (ttl 1s to 1h, "
         f"in s, m or h; uses 1 to {MAX_USES}; entries 1 to {MAX_ENTRIES:,}, default {DEFAULT_ENTRIES:,})")
_DURATION = re.compile(r"([0-9]{1,7})(s|m|h)?")
_COUNT = re.compile(r"[0-9]{1,10}")
_UNITS = {"s": 1, "m": 60, "h": 3600}

CacheKey = tuple[bytes, str, bytes]  # wrapped DEK, master key id, AAD
_BULK = frozenset({"unwrap_many", "rewrap_many", "wrap_many"})  # a BatchMasterKeyProvider's KMS calls


@dataclass(frozen=True, slots=True)
class DekCachePolicy:
    ttl: float  # seconds from the KMS call
    uses: int  # unwraps served per entry, the KMS call included
    entries: int = DEFAULT_ENTRIES


@dataclass(frozen=True, slots=True)
class DekCacheStats:
    hits: int
    misses: int
    entries: int
    dropped: int  # expired, used up, evicted or forgotten, each wiped


def parse_dek_cache(raw: str | None) -> DekCachePolicy | None:
    """`ttl=60s,uses=1000[,entries=N]`, `off` or unset (None). ConfigError names the setting, never echoes it."""
    text = (raw or "").strip()
    if text in ("", "off"):
        return None
    fields: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or name not in ("ttl", "uses", "entries") or name in fields or not value:
            raise ConfigError(_FORM)
        fields[name] = value
    if "ttl" not in fields or "uses" not in fields:
        raise ConfigError(_FORM)
    duration = _DURATION.fullmatch(fields["ttl"])
    ttl = float(int(duration.group(1)) * _UNITS[duration.group(2) or "s"]) if duration else 0.0
    uses, entries = _count(fields["uses"]), _count(fields.get("entries", str(DEFAULT_ENTRIES)))
    if not (1 <= ttl <= MAX_TTL and 1 <= uses <= MAX_USES and 1 <= entries <= MAX_ENTRIES):
        raise ConfigError(_FORM)
    return DekCachePolicy(ttl, uses, entries)


def _count(value: str) -> int:
    return int(value) if _COUNT.fullmatch(value) else 0


class _Entry:
    __slots__ = ("dek", "expires", "uses_left")

    def __init__(self, dek: bytes, expires: float, uses_left: int) -> None:
        self.dek = bytearray(dek)
        self.expires = expires
        self.uses_left = uses_left

    def wipe(self) -> None:
        self.dek[:] = bytes(len(self.dek))  # same length: overwritten in place, not reallocated

    def __repr__(self) -> str:
        return "<cached data key>"


class CachingMasterKeyProvider:
    """A MasterKeyProvider that remembers unwrapped DEKs for `policy`; everything else goes to `inner` as is."""

    def __init__(self, inner: MasterKeyProvider, policy: DekCachePolicy,
                 monotonic: Callable[[], float] = time.monotonic, background_sweep: bool = True) -> None:
        self._inner = inner
        self._policy = policy
        self._now = monotonic
        self._background = background_sweep
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()  # least recently used first
        self._expiry: deque[tuple[CacheKey, _Entry]] = deque()  # insertion order, which is expiry order
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._timer_pid = 0  # a forked child inherits `_timer` but not its thread
        self._hits = self._misses = self._dropped = 0

    def current_key_id(self) -> str:
        return self._inner.current_key_id()

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        try:
            return self._inner.wrap(dek, aad)  # never cached: a new version's DEK is fresh, and so is its wrap
        except (KeyDisabled, KeyAccessDenied):
            self.forget()  # the KMS refuses the current key now: no DEK it wrapped is served from memory either
            raise

    def can_unwrap(self, key_id: str) -> bool:
        return self._inner.can_unwrap(key_id)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        key: CacheKey = (bytes(wrapped), key_id, bytes(aad))
        dek = self._take(key) if self._inner.can_unwrap(key_id) else None  # only for a key id still configured
        if dek is not None:
            return dek
        try:
            dek = self._inner.unwrap(wrapped, key_id, aad)
        except KeyDisabled:
            self.forget(key_id)  # the KMS refuses this key (version) now: stop serving its DEKs from memory at once
            raise
        except KeyAccessDenied:
            self.forget()  # access is revoked per key (IAM, a Vault policy), not per version: drop every DEK
            raise
        self._put(key, dek)
        return dek

    def forget(self, key_id: str | None = None) -> None:
        """Drop (and wipe) every entry under `key_id`, or every entry."""
        with self._lock:
            for key in [k for k in self._entries if key_id is None or k[1] == key_id]:
                self._drop(key)
            if key_id is None:
                self._expiry.clear()

    def sweep(self) -> None:
        """Drop the entries whose ttl has passed (the timer does this while entries exist)."""
        with self._lock:
            self._sweep(self._now())

    @property
    def stats(self) -> DekCacheStats:
        with self._lock:
            return DekCacheStats(self._hits, self._misses, len(self._entries), self._dropped)

    def __getattr__(self, name: str) -> Any:
        """Other capabilities of the wrapped provider (a batch re-wrap, say) pass through, uncached."""
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if name in _BULK and callable(attr):
            return self._forgetting_on_refusal(name, attr)  # a refusal met in bulk drops cached DEKs as `unwrap`'s does
        return attr

    def _forgetting_on_refusal(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def bulk(items: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return call(items, *args, **kwargs)
            except KeyDisabled:
                if name == "wrap_many":
                    self.forget()
                else:  # (wrapped, key_id, aad) items: which one was refused is not known, so each key id
                    for key_id in {item[1] for item in items}:
                        self.forget(key_id)
                raise
            except KeyAccessDenied:
                self.forget()
                raise

        return bulk

    def __repr__(self) -> str:
        return (f"CachingMasterKeyProvider(ttl={self._policy.ttl:g}s, uses={self._policy.uses}, "
                f"entries={len(self._entries)}/{self._policy.entries})")

    def _take(self, key: CacheKey) -> bytes | None:
        with self._lock:
            now = self._now()
            self._sweep(now)
            entry = self._entries.get(key)
            if entry is None or entry.expires <= now:
                self._misses += 1
                return None
            self._hits += 1
            dek = bytes(entry.dek)
            entry.uses_left -= 1
            if entry.uses_left <= 0:
                self._drop(key)
            else:
                self._entries.move_to_end(key)
            return dek

    def _put(self, key: CacheKey, dek: bytes) -> None:
        if self._policy.uses <= 1:  # the KMS call was the only use allowed
            return
        with self._lock:
            now = self._now()
            if key in self._entries:  # two threads missed the same key at once: keep the newer
                self._drop(key)
            entry = _Entry(dek, now + self._policy.ttl, self._policy.uses - 1)
            self._entries[key] = entry
            self._expiry.append((key, entry))
            while len(self._entries) > self._policy.entries:
                self._drop(next(iter(self._entries)))
            if len(self._expiry) > 2 * self._policy.entries:  # evicted ones still queued: keep the queue bounded
                self._expiry = deque(item for item in self._expiry if self._entries.get(item[0]) is item[1])
            self._schedule(now)

    def _drop(self, key: CacheKey) -> None:
        entry = self._entries.pop(key)
        entry.wipe()
        self._dropped += 1

    def _sweep(self, now: float) -> None:
        while self._expiry and self._expiry[0][1].expires <= now:
            key, entry = self._expiry.popleft()
            if self._entries.get(key) is entry:  # else it was dropped (and wiped) already
                self._drop(key)

    def _schedule(self, now: float) -> None:
        """Under the lock: a daemon timer for the oldest entry's expiry, unless one is pending."""
        if not self._background or not self._expiry or (self._timer is not None and self._timer_pid == os.getpid()):
            return
        delay = max(SWEEP_EVERY, self._expiry[0][1].expires - now)
        self._timer = threading.Timer(delay, self._on_timer)
        self._timer.daemon = True
        self._timer_pid = os.getpid()
        self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            now = self._now()
            self._sweep(now)
            self._schedule(now)
