"""The MasterKeyProvider contract, run against every provider (keyring's BackendBasicTests pattern).

An unknown key id is a KeyProviderError, not an IntegrityError: key ids are not secret, and "this installation
does not hold master key X" is what an operator must be told to fix it (configure the retired key), whereas
tampering and wrong keys all collapse into the one vague IntegrityError.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.adapters.keys_local import LocalMasterKeyProvider, parse_key_list
from sprongus.domain.envelope import aad_for
from sprongus.domain.errors import IntegrityError, KeyProviderError
from sprongus.domain.scope import Scope
from sprongus.entrypoints import key_material as km
from sprongus.ports.crypto import MasterKeyProvider
from tests.harness import is_new_key_id
from tests.unit.keyring_fake import InMemoryKeyring

AAD = aad_for(Scope.project("p1"), "db.password", 7)


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class Subject:
    name: str  # the provider part of every key id it issues
    provider: MasterKeyProvider
    add_master_key: Callable[[], None]
    reopen: Callable[[], MasterKeyProvider] | None  # a new process over the same key storage


def env_subject(_: Path) -> Subject:
    setting = f"k1:{b64key()}, k0:{b64key()}"
    material = km.env_keys(setting, None)
    master = material.master
    assert isinstance(master, LocalMasterKeyProvider)

    def add() -> None:  # the operator prepends a new key to SPRONGUS_MASTER_KEYS and restarts
        nonlocal setting
        setting = f"k2:{b64key()},{setting}"
        master.reload(parse_key_list(setting, "SPRONGUS_MASTER_KEYS"))

    return Subject("env", master, add, lambda: km.env_keys(setting, None).master)


def file_subject(tmp_path: Path) -> Subject:
    path = str(tmp_path / "home" / "master.key")
    material = km.file_keys(path)
    material.master.current_key_id()  # the first write makes the key
    assert material.add_master_key is not None
    return Subject("file", material.master, material.add_master_key, lambda: km.file_keys(path).master)


def keychain_subject(tmp_path: Path) -> Subject:
    backend, fallback = InMemoryKeyring(), tmp_path / "master.key"
    material = km.keychain_keys("vault-1", 2.0, str(fallback), backend=backend)
    material.master.current_key_id()  # the first write makes the key
    assert material.add_master_key is not None and backend.items and not fallback.exists()
    return Subject("keychain", material.master, material.add_master_key,
                   lambda: km.keychain_keys("vault-1", 2.0, str(fallback), backend=backend).master)


def memory_subject(_: Path) -> Subject:
    material = km.memory_keys()
    assert material.add_master_key is not None
    return Subject("memory", material.master, material.add_master_key, None)


def composite_subject(tmp_path: Path) -> Subject:
    current, retired = km.memory_keys(), km.env_keys(f"old:{b64key()}", None)
    assert current.add_master_key is not None
    return Subject("memory", CompositeMasterKeyProvider(current.master, [retired.master]), current.add_master_key,
                   None)


FACTORIES = {"env": env_subject, "file": file_subject, "keychain": keychain_subject, "memory": memory_subject,
             "composite": composite_subject}


class TestMasterKeyProviderContract:
    @pytest.fixture(params=FACTORIES.keys())
    def subject(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
        yield FACTORIES[request.param](tmp_path)

    def test_wrap_unwrap_round_trip(self, subject: Subject) -> None:
        dek = os.urandom(32)
        wrapped = subject.provider.wrap(dek, AAD)
        assert wrapped.master_key_id == subject.provider.current_key_id()
        assert dek not in wrapped.blob
        assert subject.provider.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek

    def test_wrapping_twice_gives_different_blobs(self, subject: Subject) -> None:
        dek = os.urandom(32)
        assert subject.provider.wrap(dek, AAD).blob != subject.provider.wrap(dek, AAD).blob

    def test_current_key_id_names_the_provider(self, subject: Subject) -> None:
        key_id = subject.provider.current_key_id()
        assert key_id.startswith(f"{subject.name}:") and len(key_id) > len(subject.name) + 1
        assert subject.provider.can_unwrap(key_id)

    @pytest.mark.parametrize("other", [aad_for(Scope.project("p1"), "db.password", 6),
                                       aad_for(Scope.project("p2"), "db.password", 7), b""])
    def test_wrong_aad_fails_with_integrity_error(self, subject: Subject, other: bytes) -> None:
        wrapped = subject.provider.wrap(os.urandom(32), AAD)
        with pytest.raises(IntegrityError):
            subject.provider.unwrap(wrapped.blob, wrapped.master_key_id, other)

    @pytest.mark.parametrize("tamper", [
        lambda b: bytes([b[0] ^ 1]) + b[1:], lambda b: b[:20] + bytes([b[20] ^ 0x80]) + b[21:],
        lambda b: b[:-1] + bytes([b[-1] ^ 1]), lambda b: b[:-1], lambda b: b + b"\0", lambda b: b"", lambda b: b[:11],
    ], ids=["nonce", "body", "tag", "truncated", "extended", "empty", "short"])
    def test_tampered_blob_fails_with_integrity_error(self, subject: Subject, tamper: Callable[[bytes], bytes]) -> None:
        wrapped = subject.provider.wrap(os.urandom(32), AAD)
        with pytest.raises(IntegrityError):
            subject.provider.unwrap(tamper(wrapped.blob), wrapped.master_key_id, AAD)

    def test_unknown_key_id_is_a_key_provider_error(self, subject: Subject) -> None:
        wrapped = subject.provider.wrap(os.urandom(32), AAD)
        version = wrapped.master_key_id.partition(":")[2]
        for key_id in (f"elsewhere:{version}", f"{subject.name}:v999", subject.name, version, ""):
            assert not subject.provider.can_unwrap(key_id)
            with pytest.raises(KeyProviderError) as info:
                subject.provider.unwrap(wrapped.blob, key_id, AAD)
            assert not isinstance(info.value, IntegrityError)

    def test_after_add_master_key_the_new_key_is_current_and_old_wraps_still_unwrap(self, subject: Subject) -> None:
        dek_old, dek_new = os.urandom(32), os.urandom(32)
        old = subject.provider.wrap(dek_old, AAD)
        subject.add_master_key()
        new_id = subject.provider.current_key_id()
        assert new_id != old.master_key_id and new_id.startswith(f"{subject.name}:")
        new = subject.provider.wrap(dek_new, AAD)
        assert new.master_key_id == new_id
        assert subject.provider.can_unwrap(old.master_key_id) and subject.provider.can_unwrap(new_id)
        assert subject.provider.unwrap(old.blob, old.master_key_id, AAD) == dek_old
        assert subject.provider.unwrap(new.blob, new_id, AAD) == dek_new
        with pytest.raises(IntegrityError):  # the versions are different keys, not aliases
            subject.provider.unwrap(new.blob, old.master_key_id, AAD)

    def test_a_new_process_over_the_same_storage_unwraps_and_sees_added_keys(self, subject: Subject) -> None:
        if subject.reopen is None:
            pytest.skip(f"{subject.name} keys live only as long as the process")
        dek = os.urandom(32)
        old = subject.provider.wrap(dek, AAD)
        subject.add_master_key()
        again = subject.reopen()
        assert again.current_key_id() == subject.provider.current_key_id()
        assert again.unwrap(old.blob, old.master_key_id, AAD) == dek


def test_the_composite_wraps_with_the_current_provider_and_unwraps_with_retired_ones() -> None:
    current, retired = km.memory_keys(), km.env_keys(f"old:{b64key()}", None)
    dek = os.urandom(32)
    legacy = retired.master.wrap(dek, AAD)
    composite = CompositeMasterKeyProvider(current.master, [retired.master])
    assert composite.wrap(dek, AAD).master_key_id == current.master.current_key_id()
    assert is_new_key_id(current.master.current_key_id(), "memory:v1")
    assert composite.can_unwrap("env:old")
    assert composite.unwrap(legacy.blob, "env:old", AAD) == dek
    with pytest.raises(KeyProviderError, match="env:old"):
        CompositeMasterKeyProvider(current.master).unwrap(legacy.blob, "env:old", AAD)
