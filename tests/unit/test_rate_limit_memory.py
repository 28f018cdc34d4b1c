"""The in-process moving windows (`memory://`): the same decisions as limits' MemoryStorage, no thread started per
request, bounded memory, and exact counts under concurrent requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from sprongus.adapters.rate_limit_limits import LimitsRateLimiter
from sprongus.adapters.rate_limit_memory import SWEEP_SECONDS, InProcessWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """time.time() for both storages (limits' reads it through the same module), and the sweeps' monotonic clock."""
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    monkeypatch.setattr(time, "monotonic", fake)
    yield fake


# (identity, cost, seconds to wait before the hit)
HITS = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 4), st.sampled_from([0.0, 0.0, 0.5, 3.0, 10.0])),
                max_size=80)


@settings(max_examples=150, deadline=None)
@given(hits=HITS, limit=st.integers(1, 6))
def test_every_decision_and_window_is_limits_own(hits: list[tuple[str, int, float]], limit: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        clock = Clock()
        patch.setattr(time, "time", clock)
        item = parse(f"{limit}/10 seconds")
        theirs, ours = MovingWindowRateLimiter(MemoryStorage()), MovingWindowRateLimiter(InProcessWindows())
        for identity, cost, wait in hits:
            clock.now += wait
            assert ours.hit(item, identity, cost=cost) == theirs.hit(item, identity, cost=cost)
            mine, limits_own = ours.get_window_stats(item, identity), theirs.get_window_stats(item, identity)
            assert mine.remaining == limits_own.remaining
            if mine.remaining < limit:  # an empty window's start is "now" here, and any expired entry's in limits
                assert mine.reset_time == limits_own.reset_time


def test_no_thread_is_started_by_a_hit(clock: Clock) -> None:
    limiter = LimitsRateLimiter({"reveal": "1000/minute"}, "memory://")
    before = threading.active_count()
    for n in range(300):
        clock.now += 0.02  # limits' MemoryStorage started a timer thread whenever 10 ms had passed
        assert limiter.hit("reveal", f"user-{n % 7}").allowed
    assert threading.active_count() == before


def test_a_window_holds_no_more_entries_than_its_limit(clock: Clock) -> None:
    storage = InProcessWindows()
    for _ in range(1000):
        storage.acquire_entry("k", 5, 60)
    assert storage.get_moving_window("k", 5, 60) == (clock.now, 5)
    assert len(storage._windows["k"][1]) == 5


def test_keys_nobody_uses_again_are_swept(clock: Clock) -> None:
    """Each new identity (a caller's address, say) adds a key: they must not pile up for the process's life."""
    storage = InProcessWindows()
    for n in range(2000):
        assert storage.acquire_entry(f"addr-{n}", 10, 60)
        storage.incr(f"count-{n}", 60)
    clock.now += SWEEP_SECONDS + 61
    assert storage.acquire_entry("fresh", 10, 60)
    assert list(storage._windows) == ["fresh"] and storage._counters == {}


def test_a_step_back_of_the_wall_clock_does_not_stop_the_sweeps(clock: Clock, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    storage = InProcessWindows()
    ticks = Clock()
    monkeypatch.setattr(time, "monotonic", ticks)
    clock.now -= 86400  # the wall clock steps back a day
    for n in range(100):
        storage.acquire_entry(f"addr-{n}", 10, 60)
    clock.now += 61
    ticks.now += SWEEP_SECONDS
    storage.acquire_entry("fresh", 10, 60)
    assert list(storage._windows) == ["fresh"]


def test_a_refusal_with_every_entry_on_the_windows_edge_frees_now(clock: Clock) -> None:
    """limits counts an entry exactly `expiry` old in for acquiring and out for the window's stats: its reset is
    then now, not a whole window away."""
    limiter = LimitsRateLimiter({"reveal": "2/minute"}, "memory://")
    assert limiter.hit("reveal", "alice").allowed and limiter.hit("reveal", "alice").allowed
    clock.now += 60
    refused = limiter.hit("reveal", "alice")
    assert not refused.allowed and refused.reset_after == 0


def test_a_refused_hit_says_when_the_window_frees(clock: Clock) -> None:
    limiter = LimitsRateLimiter({"reveal": "2/minute"}, "memory://")
    assert limiter.hit("reveal", "alice").allowed
    clock.now += 20
    assert limiter.hit("reveal", "alice").allowed
    clock.now += 10
    refused = limiter.hit("reveal", "alice")
    assert not refused.allowed and refused.remaining == 0 and refused.reset_after == 30  # the first entry's end
    assert limiter.hit("reveal", "bob").allowed  # identities are counted apart
    clock.now += 30
    assert not limiter.hit("reveal", "alice").allowed  # exactly a minute old, the first entry still counts (limits)
    clock.now += 0.5
    assert limiter.hit("reveal", "alice").allowed  # the first entry left the window; the second is still in it
    assert not limiter.hit("reveal", "alice").allowed


def test_concurrent_hits_are_counted_exactly() -> None:
    limiter = LimitsRateLimiter({"reveal": "500/hour"}, "memory://")
    allowed = []

    def hammer() -> None:
        allowed.extend(limiter.hit("reveal", "alice").allowed for _ in range(200))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 500 and len(allowed) == 1600


def test_a_cost_above_the_limit_is_refused_and_takes_nothing(clock: Clock) -> None:
    storage = InProcessWindows()
    assert not storage.acquire_entry("k", 3, 60, amount=4)
    assert storage.get_moving_window("k", 3, 60) == (clock.now, 0)
    assert storage.acquire_entry("k", 3, 60, amount=3) and not storage.acquire_entry("k", 3, 60)


def test_fixed_window_counters_expire(clock: Clock) -> None:
    storage = InProcessWindows()
    assert [storage.incr("k", 10) for _ in range(3)] == [1, 2, 3] and storage.get("k") == 3
    assert storage.get_expiry("k") == clock.now + 10
    clock.now += 10
    assert storage.get("k") == 0 and storage.incr("k", 10) == 1
    storage.clear("k")
    assert storage.get("k") == 0 and storage.reset() == 0 and storage.check()

