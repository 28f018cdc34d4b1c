"""Envelope.rewrap_many / unwrap_deks / seal_many: a bulk provider gets whole lists, any other one item per call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring
from sprongus.domain.envelope import Envelope, aad_for
from sprongus.domain.errors import IntegrityError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports.crypto import MapFn, WrappedKey, batch_of
from sprongus.service.parallel import BoundedPool

AADS = [aad_for(Scope.project("p1"), f"k{i}", 1) for i in range(6)]
VALUES = [SecretValue(f"value-{i}") for i in range(6)]


class BulkKeys(LocalMasterKeyProvider):
    """A local provider that also re-wraps in bulk, recording what reached each call."""

    def __init__(self, versions: KeyVersions) -> None:
        super().__init__("bulk", versions.master)
        self.calls: list[tuple[str, int]] = []

    def can_rewrap(self, key_id: str) -> bool:
        return self.can_unwrap(key_id)

    def rewrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[WrappedKey]:
        self.calls.append(("rewrap_many", len(items)))
        return map(lambda item: self.wrap(self.unwrap(*item), item[2]), items)

    def wrap_many(self, items: Sequence[tuple[bytes, bytes]], map: MapFn) -> list[WrappedKey]:
        self.calls.append(("wrap_many", len(items)))
        return map(lambda item: self.wrap(*item), items)

    def unwrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[bytes]:
        self.calls.append(("unwrap_many", len(items)))
        return map(lambda item: self.unwrap(*item), items)


def envelope(keys: Any, hmac: KeyVersions) -> Envelope:
    cipher = AesGcmDataCipher()
    return Envelope({cipher.alg: cipher}, cipher.alg, keys, StaticHmacKeyring(hmac.hmac, "memory"))


def test_a_bulk_provider_gets_whole_lists_and_the_values_still_open() -> None:
    versions = KeyVersions.fresh()
    keys = BulkKeys(versions)
    assert batch_of(keys) is keys and batch_of(LocalMasterKeyProvider("m", versions.master)) is None
    sealing = envelope(CompositeMasterKeyProvider(keys), versions)
    sealed = sealing.seal_many(list(zip(VALUES, AADS, strict=True)), BoundedPool(3).map)
    assert keys.calls == [("wrap_many", 6)]
    keys.reload(versions.with_new_master().master)
    moved = sealing.rewrap_many(list(zip(sealed, AADS, strict=True)), BoundedPool(3).map)
    assert keys.calls[-1] == ("rewrap_many", 6)
    assert {s.master_key_id for s in moved} == {keys.current_key_id()} != {s.master_key_id for s in sealed}
    assert [(s.ciphertext, s.nonce, s.hmac) for s in moved] == [(s.ciphertext, s.nonce, s.hmac) for s in sealed]
    assert [sealing.open(s, aad) for s, aad in zip(moved, AADS, strict=True)] == VALUES
    deks = sealing.unwrap_deks(list(zip(moved, AADS, strict=True)), BoundedPool(3).map)
    assert keys.calls[-1] == ("unwrap_many", 6)
    assert [sealing.open(s, aad, dek=d) for s, aad, d in zip(moved, AADS, deks, strict=True)] == VALUES


def test_a_value_whose_hmac_must_be_remade_takes_the_per_item_path() -> None:
    versions = KeyVersions.fresh()
    keys = BulkKeys(versions)
    old = envelope(keys, versions)
    sealed = [old.seal(v, aad) for v, aad in zip(VALUES, AADS, strict=True)]
    newer = versions.with_new_hmac()  # the HMAC key changed: every tag is re-made, which needs the DEK
    keys.reload(versions.with_new_master().master)
    fresh = envelope(keys, newer)
    moved = fresh.rewrap_many(list(zip(sealed, AADS, strict=True)))
    assert not [c for c in keys.calls if c[0] == "rewrap_many"]
    assert all(s.hmac is not None and s.hmac.startswith(f"memory:{newer.hmac[0][0]}:") for s in moved)
    assert [fresh.open(s, aad) for s, aad in zip(moved, AADS, strict=True)] == VALUES


def test_without_a_bulk_provider_each_item_goes_through_the_map_and_errors_fail_the_list() -> None:
    versions = KeyVersions.fresh()
    plain = LocalMasterKeyProvider("m", versions.master)
    sealing = envelope(plain, versions)
    sealed = sealing.seal_many(list(zip(VALUES, AADS, strict=True)), BoundedPool(2).map)
    seen: list[int] = []

    def counting(fn: Any, items: Sequence[Any]) -> list[Any]:
        seen.append(len(items))
        return [fn(item) for item in items]

    assert [s.master_key_id for s in sealing.rewrap_many(list(zip(sealed, AADS, strict=True)), counting)] == \
        [plain.current_key_id()] * 6 and seen == [6]
    with pytest.raises(IntegrityError):
        sealing.rewrap_many([(sealed[0], AADS[0]), (sealed[1], AADS[0])], BoundedPool(2).map)
