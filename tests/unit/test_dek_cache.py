"""The opt-in cache of unwrapped data keys (adapters/dek_cache.py, SPRONGUS_DEK_CACHE)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from sprongus.adapters.dek_cache import CachingMasterKeyProvider, DekCachePolicy, parse_dek_cache
from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider
from sprongus.domain.errors import ConfigError, IntegrityError, KeyDisabled, KeyProviderError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from sprongus.entrypoints.profiles import container_config
from sprongus.ports.crypto import WrappedKey
from tests.contract import test_master_key_provider_contract as contract
from tests.harness import CANARY, make_harness, owner

AAD, OTHER_AAD = b"aad-1", b"aad-2"


class CountingKeys:
    """A local master key that counts unwraps (a KMS's Decrypt calls) and can be told to refuse a key."""

    def __init__(self) -> None:
        self.inner = LocalMasterKeyProvider("memory", KeyVersions.fresh().master)
        self.unwraps: Counter[bytes] = Counter()
        self.disabled = False
        self.claims = True  # False: the key id left the configuration
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        return self.inner.current_key_id()

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        return self.inner.wrap(dek, aad)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        with self._lock:
            self.unwraps[wrapped] += 1
        if self.disabled:
            raise KeyDisabled("the key is disabled")
        return self.inner.unwrap(wrapped, key_id, aad)

    def can_unwrap(self, key_id: str) -> bool:
        return self.claims and self.inner.can_unwrap(key_id)

    @property
    def calls(self) -> int:
        return sum(self.unwraps.values())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(ttl: float = 60, uses: int = 1000, entries: int = 100) -> tuple[CachingMasterKeyProvider, CountingKeys,
                                                                         Clock]:
    keys, clock = CountingKeys(), Clock()
    subject = CachingMasterKeyProvider(keys, DekCachePolicy(ttl, uses, entries), clock, background_sweep=False)
    return subject, keys, clock


def entry_buffer(subject: CachingMasterKeyProvider, wrapped: WrappedKey, aad: bytes = AAD) -> bytearray:
    return subject._entries[(wrapped.blob, wrapped.master_key_id, aad)].dek  # the buffer the cache wipes


class TestCachingProviderContract(contract.TestMasterKeyProviderContract):
    """The decorator is a MasterKeyProvider like any other (over a composite of a memory and a retired env key)."""

    @pytest.fixture
    def subject(self, tmp_path: Path) -> contract.Subject:
        inner = contract.composite_subject(tmp_path)
        caching = CachingMasterKeyProvider(inner.provider, DekCachePolicy(60, 1000), background_sweep=False)
        return contract.Subject(inner.name, caching, inner.add_master_key, None)


def test_a_second_unwrap_of_the_same_blob_and_aad_is_served_from_memory() -> None:
    subject, keys, _ = cache()
    dek = os.urandom(32)
    wrapped = subject.wrap(dek, AAD)
    assert [subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD) for _ in range(5)] == [dek] * 5
    assert keys.calls == 1
    assert subject.stats.hits == 4 and subject.stats.misses == 1


def test_a_cached_dek_never_opens_another_blob_aad_or_key_id() -> None:
    subject, keys, _ = cache()
    dek_a, dek_b = os.urandom(32), os.urandom(32)
    a, b = subject.wrap(dek_a, AAD), subject.wrap(dek_b, AAD)
    assert subject.unwrap(a.blob, a.master_key_id, AAD) == dek_a
    with pytest.raises(IntegrityError):  # the same blob in another context goes to the provider, which refuses
        subject.unwrap(a.blob, a.master_key_id, OTHER_AAD)
    with pytest.raises(IntegrityError):
        subject.unwrap(a.blob[:-1] + bytes([a.blob[-1] ^ 1]), a.master_key_id, AAD)
    with pytest.raises(KeyProviderError):  # under another key id: the provider's answer, not the cache's
        subject.unwrap(a.blob, "memory:other", AAD)
    assert subject.unwrap(b.blob, b.master_key_id, AAD) == dek_b  # another blob: its own DEK, from the provider
    assert keys.unwraps[a.blob] == 3 and keys.unwraps[b.blob] == 1
    assert subject.stats.entries == 2


def test_a_key_id_no_provider_claims_is_never_served_from_memory() -> None:
    subject, keys, _ = cache()
    wrapped = subject.wrap(os.urandom(32), AAD)
    subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    keys.claims = False
    subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    assert keys.calls == 2


def test_wrap_is_never_cached_and_does_not_fill_the_cache() -> None:
    subject, keys, _ = cache()
    dek = os.urandom(32)
    first, second = subject.wrap(dek, AAD), subject.wrap(dek, AAD)
    assert first.blob != second.blob  # each wrap is a real provider call
    assert subject.stats.entries == 0
    subject.unwrap(first.blob, first.master_key_id, AAD)
    assert keys.calls == 1  # the first unwrap after a wrap still asks the provider


def test_an_entry_expires_after_its_ttl_and_its_buffer_is_wiped() -> None:
    subject, keys, clock = cache(ttl=60)
    dek = os.urandom(32)
    wrapped = subject.wrap(dek, AAD)
    subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    buffer = entry_buffer(subject, wrapped)
    clock.now += 59.9
    assert subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek and keys.calls == 1
    clock.now += 0.1
    subject.sweep()
    assert buffer == bytearray(32) and subject.stats.entries == 0
    assert subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek and keys.calls == 2


def test_an_entry_serves_at_most_uses_unwraps_the_provider_call_included() -> None:
    subject, keys, _ = cache(uses=3)
    dek = os.urandom(32)
    wrapped = subject.wrap(dek, AAD)
    subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    buffer = entry_buffer(subject, wrapped)
    for _ in range(2):
        assert subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek
    assert keys.calls == 1 and buffer == bytearray(32) and subject.stats.entries == 0
    subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    assert keys.calls == 2


def test_uses_1_caches_nothing() -> None:
    subject, keys, _ = cache(uses=1)
    wrapped = subject.wrap(os.urandom(32), AAD)
    for _ in range(3):
        subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    assert keys.calls == 3 and subject.stats.entries == 0


def test_max_entries_evicts_the_least_recently_used_and_wipes_it() -> None:
    subject, keys, _ = cache(entries=2)
    deks = [os.urandom(32) for _ in range(3)]
    a, b, c = (subject.wrap(dek, AAD) for dek in deks)
    subject.unwrap(a.blob, a.master_key_id, AAD)
    subject.unwrap(b.blob, b.master_key_id, AAD)
    evicted = entry_buffer(subject, b)
    subject.unwrap(a.blob, a.master_key_id, AAD)  # a is now the most recently used
    subject.unwrap(c.blob, c.master_key_id, AAD)
    assert subject.stats.entries == 2 and evicted == bytearray(32)
    assert subject.unwrap(a.blob, a.master_key_id, AAD) == deks[0] and keys.unwraps[a.blob] == 1
    assert subject.unwrap(b.blob, b.master_key_id, AAD) == deks[1] and keys.unwraps[b.blob] == 2


def test_a_key_the_provider_now_refuses_drops_every_cached_dek_under_it() -> None:
    subject, keys, _ = cache()
    a, b = subject.wrap(os.urandom(32), AAD), subject.wrap(os.urandom(32), AAD)
    subject.unwrap(a.blob, a.master_key_id, AAD)
    buffer = entry_buffer(subject, a)
    keys.disabled = True
    with pytest.raises(KeyDisabled):
        subject.unwrap(b.blob, b.master_key_id, AAD)
    assert subject.stats.entries == 0 and buffer == bytearray(32)
    with pytest.raises(KeyDisabled):  # a's DEK is no longer in memory either
        subject.unwrap(a.blob, a.master_key_id, AAD)


def test_forget_wipes_everything() -> None:
    subject, _, _ = cache()
    wrapped = subject.wrap(os.urandom(32), AAD)
    subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    buffer = entry_buffer(subject, wrapped)
    subject.forget()
    assert subject.stats.entries == 0 and buffer == bytearray(32)


def test_an_idle_process_drops_expired_keys_without_another_request() -> None:
    keys = CountingKeys()
    subject = CachingMasterKeyProvider(keys, DekCachePolicy(1, 1000, 10))
    wrapped = subject.wrap(os.urandom(32), AAD)
    subject.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    buffer = entry_buffer(subject, wrapped)
    deadline = time.monotonic() + 5
    while subject.stats.entries and time.monotonic() < deadline:
        time.sleep(0.05)
    assert subject.stats.entries == 0 and buffer == bytearray(32)


def test_concurrent_unwraps_get_their_own_deks_and_the_books_balance() -> None:
    subject, keys, _ = cache(uses=50, entries=8)
    deks = [os.urandom(32) for _ in range(16)]
    wrapped = [subject.wrap(dek, AAD) for dek in deks]
    wrong: list[int] = []
    start = threading.Barrier(16)

    def work(worker: int) -> None:
        start.wait()
        for step in range(300):
            index = (worker * 7 + step) % len(deks)
            if subject.unwrap(wrapped[index].blob, wrapped[index].master_key_id, AAD) != deks[index]:
                wrong.append(index)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = subject.stats
    assert not wrong
    assert stats.hits + stats.misses == 16 * 300 and keys.calls == stats.misses
    assert stats.entries <= 8 and stats.hits > 0
    assert all(entry.dek != bytearray(32) for entry in subject._entries.values())  # live entries intact


def test_reveals_through_the_cache_are_each_audited() -> None:
    wrapped: list[CachingMasterKeyProvider] = []

    def caching(keys: object) -> CachingMasterKeyProvider:
        wrapped.append(CachingMasterKeyProvider(keys, DekCachePolicy(60, 1000)))  # type: ignore[arg-type]
        return wrapped[0]

    harness = make_harness(wrap_keys=caching, reveal_limit="100/minute")
    harness.secrets.set(owner(), Scope.project("p1"), "api.token", SecretValue(CANARY))
    for _ in range(3):
        value = harness.secrets.get(owner(), Scope.project("p1"), "api.token", reveal=True).value
        assert value is not None and value.reveal() == CANARY
    assert [e.action for e in harness.audit.events].count("reveal") == 3
    assert wrapped[0].stats.hits == 2


def test_no_dek_or_value_in_reprs_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    subject, keys, _ = cache()
    dek = os.urandom(32)
    wrapped = subject.wrap(dek, CANARY.encode())
    subject.unwrap(wrapped.blob, wrapped.master_key_id, CANARY.encode())
    keys.disabled = True
    with pytest.raises(KeyDisabled) as info:
        subject.unwrap(subject.wrap(dek, AAD).blob, wrapped.master_key_id, AAD)
    text = " ".join([repr(subject), repr(list(subject._entries.values())), str(info.value), caplog.text])
    for secret in (dek.hex(), repr(dek), CANARY):
        assert secret not in text


# -- the setting ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "policy"), [
    ("ttl=60s,uses=1000", DekCachePolicy(60, 1000, 10_000)),
    ("ttl=60,uses=1000", DekCachePolicy(60, 1000, 10_000)),
    (" uses=5 , ttl=5m ,entries=20 ", DekCachePolicy(300, 5, 20)),
    ("ttl=1h,uses=1,entries=1", DekCachePolicy(3600, 1, 1)),
    ("", None), ("off", None), (None, None),
])
def test_the_setting_parses(raw: str | None, policy: DekCachePolicy | None) -> None:
    assert parse_dek_cache(raw) == policy


@pytest.mark.parametrize("raw", [
    "on", "ttl=60s", "uses=10", "ttl=60s,uses=10,entries=", "ttl=60s,uses=10,ttl=30s", "ttl=60s;uses=10",
    "ttl=0s,uses=10", "ttl=61m,uses=10", "ttl=2h,uses=10", "ttl=60d,uses=10", "ttl=-5,uses=10", "ttl=1.5s,uses=10",
    "ttl=60s,uses=0", "ttl=60s,uses=4294967297", "ttl=60s,uses=1e3", "ttl=60s,uses=²", "ttl=60s,uses=10,entries=0",
    "ttl=60s,uses=10,entries=1000001", "ttl=60s,uses=10,size=5", f"ttl=60s,uses={CANARY}", "TTL=60s,uses=10",
])
def test_a_bad_setting_is_refused_naming_the_variable_not_echoing_it(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^SPRONGUS_DEK_CACHE: ") as info:
        Settings.from_mapping({"SPRONGUS_DEK_CACHE": raw})
    assert CANARY not in str(info.value)


def test_off_by_default() -> None:
    assert Settings.from_mapping({}).dek_cache is None
    container = build_container(Settings.from_mapping({"SPRONGUS_ENV": "test"}))
    assert isinstance(container.master_keys(), CompositeMasterKeyProvider)
    assert container_config(Settings(env="test"))["dek_cache"] == {"enabled": False}


@pytest.mark.parametrize("provider", ["env", "memory", "file", "keychain"])
def test_refused_with_a_local_key_provider(provider: str) -> None:
    settings = Settings.from_mapping({"SPRONGUS_ENV": "test", "SPRONGUS_KEY_PROVIDER": provider,
                                      "SPRONGUS_DEK_CACHE": "ttl=60s,uses=1000"})
    with pytest.raises(ConfigError, match=r"^SPRONGUS_DEK_CACHE: only with a KMS key provider"):
        container_config(settings)


def test_a_kms_provider_gets_the_policy_in_its_configuration() -> None:
    settings = Settings.from_mapping({"SPRONGUS_ENV": "test", "SPRONGUS_KEY_PROVIDER": "vault://h:8200/transit/keys/k",
                                      "SPRONGUS_DEK_CACHE": "ttl=2m,uses=50,entries=7"})
    assert container_config(settings)["dek_cache"] == {"enabled": True, "ttl": 120.0, "uses": 50, "entries": 7}


def test_other_provider_capabilities_pass_through_uncached() -> None:
    keys = CountingKeys()
    calls: list[object] = []
    keys.rewrap_many = lambda items, map: calls.append(items) or []  # type: ignore[attr-defined]
    subject = CachingMasterKeyProvider(keys, DekCachePolicy(60, 1000), background_sweep=False)
    assert subject.rewrap_many(["item"], map) == [] and calls == [["item"]]
    assert not hasattr(subject, "unwrap_many") and not hasattr(subject, "_private")
    assert subject.stats.entries == 0
