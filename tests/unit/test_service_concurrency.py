"""Bulk work calls the master key in parallel (bounded), so a slow KMS does not make it serial."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import Harness, make_harness, owner

SCOPE = Scope.project("p1")
LATENCY = 0.02


class SlowKeys:
    """Wraps the harness's master key provider: every call sleeps, and the peak of calls in flight is kept."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.active = False  # fast while the fixture stocks the vault

    def _slow(self, fn: Callable[..., Any], *args: Any) -> Any:
        if not self.active:
            return fn(*args)
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(LATENCY)
            return fn(*args)
        finally:
            with self._lock:
                self.in_flight -= 1

    def wrap(self, dek: bytes, aad: bytes) -> Any:
        return self._slow(self._inner.wrap, dek, aad)

    def unwrap(self, blob: bytes, key_id: str, aad: bytes) -> bytes:
        result: bytes = self._slow(self._inner.unwrap, blob, key_id, aad)
        return result

    def __getattr__(self, name: str) -> Any:
        if name in ("can_rewrap", "rewrap_many", "wrap_many", "unwrap_many"):
            raise AttributeError(name)  # no bulk calls: each item is a slowed call, so the pool's bound shows
        return getattr(self._inner, name)


@pytest.fixture
def slow() -> tuple[Harness, SlowKeys]:
    made: list[SlowKeys] = []

    def slow_down(inner: Any) -> Any:
        made.append(SlowKeys(inner))
        return made[0]

    h = make_harness(batch_size=50, concurrency=4, wrap_keys=slow_down)
    for i in range(16):
        h.secrets.set(owner(), SCOPE, f"k{i:02d}", SecretValue(f"value-{i}"))
    made[0].active = True
    return h, made[0]


@pytest.mark.parametrize("work", ["rotate_master", "rotate", "passphrase_export", "bundle_import", "import"])
def test_bulk_work_overlaps_master_key_calls_up_to_the_bound(slow: tuple[Harness, SlowKeys], work: str) -> None:
    h, keys = slow
    service, me = h, owner()
    if work == "rotate_master":
        h.add_master_key()
        assert service.rotation.rotate_master(me).rotated == 16
    elif work == "rotate":
        assert service.rotation.rotate(me, SCOPE).rotated == 16
    elif work == "passphrase_export":
        service.transfer.export(me, SCOPE, bundle=True, passphrase=SecretValue("correct horse battery"))
    elif work == "bundle_import":
        bundle = service.transfer.export(me, SCOPE, bundle=True).bundle
        assert service.transfer.import_(me, bundle=bundle).updated
    else:
        items = [{"key": f"n{i}", "value": "v"} for i in range(16)]
        from sprongus.domain.import_item import parse_items

        service.transfer.import_(me, items=parse_items(items, default_scope=SCOPE), allow_plaintext=True)
    assert 2 <= keys.peak <= 4  # overlapped, and never past SPRONGUS_KMS_CONCURRENCY
    assert service.secrets.get(me, SCOPE, "k07", reveal=True).value.reveal() == "value-7"  # type: ignore[union-attr]
