"""Where local master keys live: the 0600 key file and the OS keychain (real files, threads and processes)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from keyring.backends import fail, null

from sprongus.adapters.keys_file import FileKeyStore
from sprongus.adapters.keys_keychain import KeychainKeyStore
from sprongus.adapters.keys_local import KeyVersions
from sprongus.domain.envelope import aad_for
from sprongus.domain.errors import IntegrityError, KeyProviderError, KeyProviderUnavailable
from sprongus.domain.scope import Scope
from sprongus.entrypoints import key_material as km
from tests.harness import is_new_key_id
from tests.unit.keyring_fake import HungKeyring, InMemoryKeyring, LockedKeyring, UnrankedKeyring

AAD = aad_for(Scope.system(), "k", 1)


def digest(versions: KeyVersions) -> str:
    return hashlib.sha256(repr((versions.master, versions.hmac)).encode()).hexdigest()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "sprongus" / "master.key"


def test_the_key_file_is_created_0600_in_a_0700_directory_and_reused(key_path: Path) -> None:
    first, created = FileKeyStore(key_path).load_or_create()
    assert created
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    assert [p.name for p in key_path.parent.iterdir()] == ["master.key"]  # no temp file left behind
    again, created_again = FileKeyStore(key_path).load_or_create()
    assert not created_again and digest(again) == digest(first)

    wrapped = km.file_keys(str(key_path)).master.wrap(b"d" * 32, AAD)
    second_run = km.file_keys(str(key_path)).master
    assert second_run.current_key_id() == wrapped.master_key_id
    assert is_new_key_id(wrapped.master_key_id, "file:v1")
    assert second_run.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == b"d" * 32


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_a_key_file_others_can_reach_is_refused_with_the_fix(key_path: Path, mode: int) -> None:
    FileKeyStore(key_path).load_or_create()
    key_path.chmod(mode)
    with pytest.raises(KeyProviderError) as info:
        km.file_keys(str(key_path))
    assert f"chmod 600 {key_path}" in str(info.value)
    assert stat.S_IMODE(key_path.stat().st_mode) == mode  # refused, not silently "fixed" or replaced


@pytest.mark.parametrize("content", [
    b"", b"not json", b"[]", b'{"format": "other"}', b"\xff\xfe\x00garbage",
    json.dumps({"format": "sprongus.keyring.v1", "master": []}).encode(),
    json.dumps({"format": "sprongus.keyring.v1", "master": [{"id": "v1", "key": "c2hvcnQ="}]}).encode(),
    json.dumps({"format": "sprongus.keyring.v1", "master": [{"id": "bad id", "key": "A" * 43 + "="}]}).encode(),
], ids=["empty", "text", "list", "format", "binary", "no-keys", "short-key", "bad-id"])
def test_a_corrupt_key_file_is_refused_clearly_and_left_alone(key_path: Path, content: bytes) -> None:
    key_path.parent.mkdir(parents=True)
    key_path.write_bytes(content)
    key_path.chmod(0o600)
    with pytest.raises(KeyProviderError, match=r"sprongus keyring|no master key") as info:
        km.file_keys(str(key_path))
    assert str(key_path) in str(info.value) and "c2hvcnQ" not in str(info.value)
    assert key_path.read_bytes() == content


def test_threads_creating_the_key_file_at_once_end_with_one_key(tmp_path: Path) -> None:
    for round_ in range(15):
        path = tmp_path / f"r{round_}" / "master.key"
        barrier, results = threading.Barrier(8), []

        def create(path: Path = path, barrier: threading.Barrier = barrier, results: list = results) -> None:
            barrier.wait()
            results.append(FileKeyStore(path).load_or_create())

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        on_disk = FileKeyStore(path).load()
        assert len(results) == 8
        assert {digest(v) for v, _ in results} == {digest(on_disk)}
        assert sum(created for _, created in results) == 1


CHILD = textwrap.dedent("""
    import hashlib, sys, time
    from pathlib import Path
    from sprongus.adapters.keys_file import FileKeyStore
    start_at = float(sys.argv[2])
    while time.time() < start_at:
        pass
    versions, created = FileKeyStore(Path(sys.argv[1])).load_or_create()
    print(hashlib.sha256(repr((versions.master, versions.hmac)).encode()).hexdigest(), int(created))
""")


def test_processes_creating_the_key_file_at_once_end_with_one_key(key_path: Path) -> None:
    start_at = str(time.time() + 2.0)
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(key_path), start_at], stdout=subprocess.PIPE,
                                 text=True) for _ in range(6)]
    outputs = [child.communicate(timeout=60)[0].split() for child in children]
    assert all(child.returncode == 0 for child in children)
    assert {digest_ for digest_, _ in outputs} == {digest(FileKeyStore(key_path).load())}
    assert sum(int(created) for _, created in outputs) == 1


def test_the_keychain_keeps_the_keys_and_gives_them_back(tmp_path: Path) -> None:
    backend, fallback, notices = InMemoryKeyring(), tmp_path / "master.key", []
    material = km.keychain_keys("vault-a", 2.0, str(fallback), notices.append, backend=backend)
    assert material.backend == "keychain" and not backend.items  # made by the first write, not by a read
    assert is_new_key_id(material.master.current_key_id(), "keychain:v1")
    assert list(backend.items) == [("sprongus", "keyring:vault-a")]
    assert json.loads(backend.items["sprongus", "keyring:vault-a"])["format"] == "sprongus.keyring.v1"
    wrapped = material.master.wrap(b"d" * 32, AAD)

    again = km.keychain_keys("vault-a", 2.0, str(fallback), notices.append, backend=backend)
    assert again.master.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == b"d" * 32
    assert backend.writes == 1 and not fallback.exists() and notices == []
    other_vault = km.keychain_keys("vault-b", 2.0, str(fallback), backend=backend)
    with pytest.raises(KeyProviderError, match="holds no sprongus master key"):  # and never makes one to try
        other_vault.master.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    assert not other_vault.master.has_key
    other_vault.master.current_key_id()  # its own first write: a key of its own, with an id of its own
    with pytest.raises(KeyProviderError, match="not available"):  # another vault's keys: never the DEK
        other_vault.master.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    forged = (wrapped.blob, other_vault.master.current_key_id())  # even under its own key id
    with pytest.raises(IntegrityError):
        other_vault.master.unwrap(*forged, AAD)


def test_a_hung_keychain_gives_up_at_the_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(KeyProviderUnavailable, match=r"did not answer within 0\.5 s"):
        km.keychain_keys("vault-a", 0.5, str(tmp_path / "master.key"), backend=HungKeyring(delay=10))
    assert time.monotonic() - started < 0.5 + 1
    assert not (tmp_path / "master.key").exists()


def test_a_locked_keychain_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(KeyProviderUnavailable, match="KeyringLocked; unlock it") as caught:
        KeychainKeyStore(LockedKeyring(), "vault-a", timeout=2.0).load_or_create()
    assert "the keychain is locked" not in str(caught.value)  # the backend's own text is not repeated


def test_a_corrupt_keychain_item_is_refused(tmp_path: Path) -> None:
    backend = InMemoryKeyring()
    backend.set_password("sprongus", "keyring:vault-a", "{not a keyring")
    with pytest.raises(KeyProviderError, match="OS keychain item does not hold a valid sprongus keyring"):
        km.keychain_keys("vault-a", 2.0, str(tmp_path / "master.key"), backend=backend)


def no_real_keychains() -> list[object]:
    backends: list[object] = [fail.Keyring(), null.Keyring(), UnrankedKeyring()]
    try:  # keyrings.alt keeps a plaintext file: no better than our own 0600 key file
        from keyrings.alt.file import PlaintextKeyring
    except ImportError:
        return backends
    return [*backends, PlaintextKeyring()]


@pytest.mark.parametrize("backend", no_real_keychains(), ids=type)
def test_without_a_real_keychain_the_key_file_is_used_and_the_user_told_once(tmp_path: Path, backend: object) -> None:
    path, notices = tmp_path / "home" / "master.key", []
    first = km.keychain_keys("vault-a", 2.0, str(path), notices.append, backend=backend)
    assert first.backend == "file" and not path.exists() and notices == []  # made by the first write
    assert is_new_key_id(first.master.current_key_id(), "file:v1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(notices) == 1 and str(path) in notices[0] and "no OS keychain" in notices[0]
    second = km.keychain_keys("vault-a", 2.0, str(path), notices.append, backend=backend)
    assert len(notices) == 1
    wrapped = first.master.wrap(b"d" * 32, AAD)
    assert second.master.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == b"d" * 32


def test_an_existing_key_file_wins_over_the_keychain(key_path: Path) -> None:
    from_file = km.file_keys(str(key_path))
    from_file.master.current_key_id()  # the first write makes the file
    backend = InMemoryKeyring()
    material = km.keychain_keys("vault-a", 2.0, str(key_path), backend=backend)
    assert material.backend == "file" and backend.items == {}
    wrapped = from_file.master.wrap(b"d" * 32, AAD)
    assert material.master.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == b"d" * 32


def test_added_master_keys_are_persisted_in_the_file_with_mode_0600(key_path: Path) -> None:
    material = km.file_keys(str(key_path))
    assert material.add_master_key is not None
    old = material.master.wrap(b"d" * 32, AAD)
    material.add_master_key()
    assert material.master.current_key_id() == km.file_keys(str(key_path)).master.current_key_id()
    assert is_new_key_id(material.master.current_key_id(), "file:v2")
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert km.file_keys(str(key_path)).master.unwrap(old.blob, old.master_key_id, AAD) == b"d" * 32
