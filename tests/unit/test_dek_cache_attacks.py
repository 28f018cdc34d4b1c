"""Attacks on the DEK cache (adapters/dek_cache.py): a refusal by the KMS must stop cached reveals whichever path
met it (a bulk call, a wrap) and, for an access denial, whichever version of the key the DEK was under."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Sequence

import pytest

from sprongus.adapters.dek_cache import CachingMasterKeyProvider, DekCachePolicy
from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.domain.envelope import Envelope, aad_for
from sprongus.domain.errors import IntegrityError, KeyAccessDenied, KeyDisabled, KeyProviderError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports.crypto import MapFn, WrappedKey, serial_map

AAD = b"aad-1"


class VersionedKms:
    """A KMS-like key with versions (`fake:k:vN`, as Vault transit and GCP name them), in memory: can refuse one
    version (disabled) or every version (access denied), and counts its unwraps."""

    def __init__(self) -> None:
        self.version = 1
        self.store: dict[tuple[bytes, str, bytes], bytes] = {}
        self.disabled: set[str] = set()
        self.denied = False
        self.unwraps: Counter[str] = Counter()
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        return f"fake:k:v{self.version}"

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        key_id = self.current_key_id()
        if self.denied:
            raise KeyAccessDenied("the service identity may no longer use fake:k")
        if key_id in self.disabled:
            raise KeyDisabled(f"{key_id} is disabled")
        blob = os.urandom(24)
        with self._lock:
            self.store[(blob, key_id, aad)] = bytes(dek)
        return WrappedKey(key_id, blob)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        with self._lock:
            self.unwraps[key_id] += 1
        if not self.can_unwrap(key_id):
            raise KeyProviderError(f"not a version of fake:k: {key_id}")
        if self.denied:
            raise KeyAccessDenied("the service identity may no longer use fake:k")
        if key_id in self.disabled:
            raise KeyDisabled(f"{key_id} is disabled")
        try:
            return self.store[(bytes(wrapped), key_id, bytes(aad))]
        except KeyError:
            raise IntegrityError() from None

    def can_unwrap(self, key_id: str) -> bool:
        return key_id.startswith("fake:k:v")


class BatchVersionedKms(VersionedKms):
    """The same key with the bulk calls of a BatchMasterKeyProvider (as transit's batch_input)."""

    def can_rewrap(self, key_id: str) -> bool:
        return self.can_unwrap(key_id)

    def rewrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[WrappedKey]:
        return map(lambda item: self.wrap(self.unwrap(*item), item[2]), items)

    def wrap_many(self, items: Sequence[tuple[bytes, bytes]], map: MapFn) -> list[WrappedKey]:
        return map(lambda item: self.wrap(*item), items)

    def unwrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[bytes]:
        return map(lambda item: self.unwrap(*item), items)


def cached(kms: VersionedKms) -> CachingMasterKeyProvider:
    return CachingMasterKeyProvider(CompositeMasterKeyProvider(kms), DekCachePolicy(600, 1000),
                                    background_sweep=False)


@pytest.mark.parametrize("kms_type", [VersionedKms, BatchVersionedKms])
def test_a_key_disabled_met_by_a_bulk_unwrap_stops_cached_reveals(kms_type: type[VersionedKms]) -> None:
    """Bundle export (Envelope.unwrap_deks) goes through the cache's pass-through `unwrap_many`: the KMS's refusal
    there must drop the cached DEKs of that key as the single `unwrap`'s refusal does."""
    kms = kms_type()
    subject = cached(kms)
    a, b = subject.wrap(os.urandom(32), AAD), subject.wrap(os.urandom(32), AAD)
    subject.unwrap(a.blob, a.master_key_id, AAD)  # now in memory
    kms.disabled.add(a.master_key_id)
    with pytest.raises(KeyDisabled):
        subject.unwrap_many([(b.blob, b.master_key_id, AAD)], serial_map)
    assert subject.stats.entries == 0
    with pytest.raises(KeyDisabled):  # not served from memory after the KMS said no
        subject.unwrap(a.blob, a.master_key_id, AAD)


def test_a_key_disabled_met_by_rotate_master_in_bulk_stops_cached_reveals() -> None:
    kms = BatchVersionedKms()
    subject = cached(kms)
    envelope = Envelope(_ciphers(), "AES-256-GCM", subject)
    aad = aad_for(Scope.project("p1"), "k", 1)
    sealed = envelope.seal(SecretValue("value"), aad)
    assert envelope.open(sealed, aad).reveal() == "value"  # DEK cached
    kms.version = 2
    kms.disabled.add("fake:k:v1")
    with pytest.raises(KeyDisabled):
        envelope.rewrap_many([(sealed, aad)])
    with pytest.raises(KeyDisabled):
        envelope.open(sealed, aad)


def test_access_denied_on_one_version_drops_the_cached_deks_of_every_version() -> None:
    """A revoked IAM grant or Vault policy refuses the key, not one version: the DEKs cached under v1 must not
    keep opening values after the KMS denied access while unwrapping a v2 blob."""
    kms = VersionedKms()
    subject = cached(kms)
    old = subject.wrap(os.urandom(32), AAD)
    kms.version = 2
    new = subject.wrap(os.urandom(32), AAD)
    subject.unwrap(old.blob, old.master_key_id, AAD)  # v1's DEK in memory
    kms.denied = True
    with pytest.raises(KeyAccessDenied):
        subject.unwrap(new.blob, new.master_key_id, AAD)
    with pytest.raises(KeyAccessDenied):
        subject.unwrap(old.blob, old.master_key_id, AAD)
    assert subject.stats.entries == 0


def test_access_denied_on_a_wrap_drops_cached_deks() -> None:
    """A write meets the revocation first: the reveals after it must ask the KMS, which refuses them too."""
    kms = VersionedKms()
    subject = cached(kms)
    a = subject.wrap(os.urandom(32), AAD)
    subject.unwrap(a.blob, a.master_key_id, AAD)
    kms.denied = True
    with pytest.raises(KeyAccessDenied):
        subject.wrap(os.urandom(32), AAD)
    with pytest.raises(KeyAccessDenied):
        subject.unwrap(a.blob, a.master_key_id, AAD)


def test_an_outage_in_bulk_keeps_the_cache_and_is_not_integrity() -> None:
    """Only a refusal forgets; an outage is reported as one (exit 8 / 503) and leaves cached DEKs alone."""
    from sprongus.domain.errors import KeyProviderUnavailable

    kms = BatchVersionedKms()
    subject = cached(kms)
    a = subject.wrap(os.urandom(32), AAD)
    dek = subject.unwrap(a.blob, a.master_key_id, AAD)

    def down(*_: object) -> list[bytes]:
        raise KeyProviderUnavailable("KMS is down")

    kms.unwrap_many = down  # type: ignore[method-assign]
    with pytest.raises(KeyProviderUnavailable):
        subject.unwrap_many([(a.blob, a.master_key_id, AAD)], serial_map)
    assert subject.unwrap(a.blob, a.master_key_id, AAD) == dek
    assert kms.unwraps[a.master_key_id] == 1


def _ciphers() -> dict[str, object]:
    from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
    from sprongus.adapters.random_os import OsRandomSource

    cipher = AesGcmDataCipher(OsRandomSource())
    return {cipher.alg: cipher}
