"""The moving windows of one process (`memory://`), for `limits`' MovingWindowRateLimiter, without a timer thread.

`limits`' own MemoryStorage expires entries on a threading.Timer of 10 ms, which it starts again from the request
thread whenever the last one has ended: under load, about every other request started a thread and waited for it
to run (Thread.start waits for the new thread, which must win the interpreter from its siblings first; 13% of a
reveal's time under gunicorn on the embedded vault, by py-spy). It also prepends each entry to a Python list, so an
entry costs a copy of the whole window (with the limits raised for a benchmark, tens of thousands of entries).

Here a window is a deque of entry times, oldest first: an entry is appended, the expired ones are dropped from the
front when the key is next used, and a window never holds more entries than its limit. Keys nobody uses again are
swept on the first use after SWEEP_SECONDS, on the caller's thread. The decisions are limits' own: an entry exactly
`expiry` seconds old still counts, and `amount` entries are taken only if all of them fit.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from limits.storage.base import MovingWindowSupport, Storage

SWEEP_SECONDS = 60.0


class InProcessWindows(Storage, MovingWindowSupport):
    STORAGE_SCHEME = None  # not a scheme of storage_from_string: LimitsRateLimiter builds it for `memory://`

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, deque[float]]] = {}  # key -> (expiry in seconds, entry times)
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (count, expires at): the fixed-window calls
        self._next_sweep = time.monotonic() + SWEEP_SECONDS  # not the wall clock: a step back must not stop sweeps

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    # --- the moving window ----------------------------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._lock:
            now = time.time()  # under the lock: each window's entries stay in time order
            self._sweep()
            held = self._windows.get(key)
            if held is None:
                held = self._windows[key] = (float(expiry), deque())
            entries = _current(held[1], now - expiry)
            if len(entries) > limit - amount:
                return False
            entries.extend([now] * amount)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """The time of the oldest entry in the window and the number of entries in it; (now, 0) for none. Like
        limits, this counts an entry exactly `expiry` seconds old out, where acquire_entry still counts it in."""
        now = time.time()
        with self._lock:
            held = self._windows.get(key)
            entries = _current(held[1], now - expiry) if held is not None else deque()
            on_the_edge = 0
            while on_the_edge < len(entries) and entries[on_the_edge] <= now - expiry:
                on_the_edge += 1
            if on_the_edge == len(entries):  # none counted: the window frees now (its start is `expiry` ago)
                return (entries[0] if entries else now), 0
            return entries[on_the_edge], len(entries) - on_the_edge

    def _sweep(self) -> None:
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        now = time.time()
        for key, (expiry, entries) in list(self._windows.items()):
            if not _current(entries, now - expiry):
                del self._windows[key]
        for key, (_, expires_at) in list(self._counters.items()):
            if expires_at <= now:
                del self._counters[key]

    # --- the rest of limits' Storage (fixed windows: no strategy here uses them) ----------------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            count, expires_at = self._counters.get(key, (0, 0.0))
            if expires_at <= now:
                count, expires_at = 0, now + expiry
            self._counters[key] = (count + amount, expires_at)
            return count + amount

    def get(self, key: str) -> int:
        count, expires_at = self._counters.get(key, (0, 0.0))
        return count if expires_at > time.time() else 0

    def get_expiry(self, key: str) -> float:
        expires_at = self._counters.get(key, (0, 0.0))[1]
        return expires_at if expires_at > time.time() else time.time()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._windows) + len(self._counters)
            self._windows.clear()
            self._counters.clear()
            return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)
            self._counters.pop(key, None)


def _current(entries: deque[float], oldest_counted: float) -> deque[float]:
    """`entries` without those older than `oldest_counted` (dropped from the front: the deque is in time order)."""
    while entries and entries[0] < oldest_counted:
        entries.popleft()
    return entries
