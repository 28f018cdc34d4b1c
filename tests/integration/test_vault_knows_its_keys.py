"""The vault knows its keys: a lost, replaced or wrong master key is refused before anything is written, reads never
make keys, key ids are unique, value-HMAC keys come with the vault.

Real SQLite vaults built by the real container from settings, the file and keychain providers on disk and in a
keyring, and env keys; the KMS case is in tests/integration/kms/test_kms_wrong_key.py.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from dependency_injector import providers

from sprongus.domain.errors import ConfigError, KeyProviderUnavailable, VaultKeyMismatch
from sprongus.entrypoints import key_material as km
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container, build_container
from sprongus.entrypoints.profiles import container_config
from tests.harness import CANARY, is_new_key_id, use_cases
from tests.integration.owner_ops import OWNER, SCOPE, reveal, write
from tests.unit.keyring_fake import InMemoryKeyring


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def settings(home: Path, **env: str) -> Settings:
    return Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home),
                                  "SPRONGUS_KEY_PROVIDER": "file", **env})


def open_vault(home: Path, **env: str) -> Container:
    return build_container(settings(home, **env), notice=lambda _: None)


def close(vault: Container) -> None:
    vault.database().db.close()


def rows(home: Path, table: str = "secret_kv") -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "vault.db") as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()




@pytest.fixture
def written(tmp_path: Path) -> Path:
    """A vault with one secret under a key file; returns its home."""
    home = tmp_path / "home"
    vault = open_vault(home)
    write(vault)
    close(vault)
    return home


def test_a_deleted_key_file_is_refused_and_never_replaced_by_a_new_key(written: Path) -> None:
    key_file = written / "master.key"
    key_file.unlink()
    before = (rows(written), rows(written, "vault_key"), rows(written, "audit_event"))
    with pytest.raises(VaultKeyMismatch, match="does not match this vault") as info:
        open_vault(written)
    message = str(info.value)
    assert "holds no master key" in message and "restore the key from a backup" in message
    assert "file:v1-" in message and CANARY not in message
    assert not key_file.exists()  # not a read, not a write: no command made a new key
    assert (rows(written), rows(written, "vault_key"), rows(written, "audit_event")) == before


def test_another_vaults_key_file_is_refused_and_the_right_one_works_again(written: Path, tmp_path: Path) -> None:
    other_home = tmp_path / "other"
    other = open_vault(other_home)
    write(other, "theirs", "their value")
    close(other)
    original = (written / "master.key").read_bytes()
    shutil.copy(other_home / "master.key", written / "master.key")
    before = rows(written)
    with pytest.raises(VaultKeyMismatch, match="opens none of the keys this vault was written with"):
        open_vault(written)
    assert rows(written) == before

    (written / "master.key").write_bytes(original)
    vault = open_vault(written)
    assert reveal(vault) == CANARY
    close(vault)


def test_a_vault_from_before_key_records_is_checked_against_its_data_keys(written: Path, tmp_path: Path) -> None:
    """Release-1 vaults have no vault_key rows: the key is tested against stored data keys, then recorded."""
    with sqlite3.connect(written / "vault.db") as conn:
        conn.execute("DELETE FROM vault_key")
    original = (written / "master.key").read_bytes()
    impostor_home = tmp_path / "impostor"
    impostor = open_vault(impostor_home)
    write(impostor)
    close(impostor)
    shutil.copy(impostor_home / "master.key", written / "master.key")
    with pytest.raises(VaultKeyMismatch):
        open_vault(written)
    assert rows(written, "vault_key") == []

    (written / "master.key").write_bytes(original)
    vault = open_vault(written)
    assert reveal(vault) == CANARY
    assert rows(written, "vault_key") == []  # verified; reads record nothing
    write(vault, "next")
    assert [r[0] for r in rows(written, "vault_key")] == ["master"]  # the first write records it
    close(vault)


def test_reads_never_make_a_key_and_the_first_write_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    vault = open_vault(home)
    assert use_cases(vault).secrets.list(OWNER, SCOPE).items == []
    assert not (home / "master.key").exists() and rows(home, "vault_key") == []
    write(vault)
    assert (home / "master.key").exists()
    assert [(r[0], r[1]) for r in rows(home, "vault_key")] == [("master", vault.master_keys().current_key_id())]
    close(vault)


@pytest.mark.parametrize("first_act", ["reveal", "write"])
def test_a_sibling_worker_adopts_the_key_the_first_write_made(tmp_path: Path, first_act: str) -> None:
    """Two gunicorn workers start on a new vault, neither with a key; one worker's first write makes the key file.
    The other used to call the vault's secrets unopenable (VaultKeyMismatch: 500) until it restarted. Found by the
    peer benchmark."""
    home = tmp_path / "home"
    first, sibling = open_vault(home), open_vault(home)
    write(first, "k", f"{CANARY}-1")
    if first_act == "reveal":
        assert reveal(sibling, "k") == f"{CANARY}-1"
    write(sibling, "k2", f"{CANARY}-2")
    assert reveal(first, "k2") == f"{CANARY}-2" and reveal(sibling, "k") == f"{CANARY}-1"
    assert [r[0] for r in rows(home, "vault_key") if r[0] == "master"] == ["master"]  # one key, shared
    close(first)
    close(sibling)


def test_new_key_files_never_share_an_id(tmp_path: Path) -> None:
    ids = set()
    for name in ("a", "b", "c"):
        vault = open_vault(tmp_path / name)
        write(vault)
        key_id = vault.master_keys().current_key_id()
        assert is_new_key_id(key_id, "file:v1")
        ids.add(key_id)
        close(vault)
    assert len(ids) == 3


def keychain_vault(home: Path, backend: object) -> Container:
    """The container with the keychain provider on a given keyring backend (a real one, or none at all)."""
    container = Container()
    container.config.from_dict(container_config(settings(home, SPRONGUS_KEY_PROVIDER="keychain")))
    path = str(home / "master.key")
    container.key_material.override(providers.Singleton(km.keychain_keys, "vault-1", 2.0, path, None, backend))
    container.vault_keys().check()
    return container


def test_a_keychain_vault_on_a_box_without_a_keychain_is_refused_not_given_a_key_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    vault = keychain_vault(home, InMemoryKeyring())
    write(vault)
    close(vault)
    from keyring.backends.fail import Keyring as NoKeyring

    away = keychain_vault(home, NoKeyring())  # masked reads need no key: the check waits for the key's first use
    with pytest.raises(KeyProviderUnavailable, match="in the OS keychain, which is not reachable here"):
        write(away, "another")  # an outage (exit 8), not a lost key (exit 7): the key is in the keychain
    with pytest.raises(KeyProviderUnavailable, match="not reachable here"):
        reveal(away)
    assert not (home / "master.key").exists()
    close(away)


def test_env_keys_without_hmac_settings_sign_with_a_key_the_vault_keeps(tmp_path: Path) -> None:
    old, new = b64key(), b64key()
    home = tmp_path / "home"
    vault = open_vault(home, SPRONGUS_KEY_PROVIDER="env", SPRONGUS_MASTER_KEYS=f"k1:{old}")
    write(vault)
    hmac_rows = [r for r in rows(home, "vault_key") if r[0] == "hmac"]
    assert len(hmac_rows) == 1 and CANARY not in str(hmac_rows)
    tag = rows(home)[0]
    assert any(str(cell).startswith("db:h1-") for cell in tag)
    assert use_cases(vault).rotation.verify(OWNER).ok
    first_hmac = vault.envelope().current_hmac_key_id()
    assert vault.vault_keys().rotate_hmac().startswith("db:h2-")
    write(vault, "after")
    assert vault.envelope().current_hmac_key_id() != first_hmac
    close(vault)

    # A new master key first in the list: rotate-master re-wraps the data keys and the vault's HMAC keys, so the
    # old master key can go and every value still verifies.
    rotated = open_vault(home, SPRONGUS_KEY_PROVIDER="env", SPRONGUS_MASTER_KEYS=f"k2:{new},k1:{old}")
    use_cases(rotated).rotation.rotate_master(OWNER)
    assert {r[3] for r in rows(home, "vault_key") if r[0] == "hmac"} == {"env:k2"}
    close(rotated)
    only_new = open_vault(home, SPRONGUS_KEY_PROVIDER="env", SPRONGUS_MASTER_KEYS=f"k2:{new}")
    report = use_cases(only_new).rotation.verify(OWNER)
    assert report.ok and report.checked == 2
    assert reveal(only_new) == CANARY
    close(only_new)


def test_rotate_hmac_with_hmac_keys_from_the_environment_says_where_to_rotate(tmp_path: Path) -> None:
    vault = open_vault(tmp_path, SPRONGUS_KEY_PROVIDER="env", SPRONGUS_MASTER_KEYS=f"k1:{b64key()}",
                       SPRONGUS_HMAC_KEYS=f"h1:{b64key()}")
    with pytest.raises(ConfigError, match="SPRONGUS_HMAC_KEYS"):
        vault.vault_keys().rotate_hmac()
    close(vault)


def test_a_key_file_rotated_by_another_process_is_adopted_without_a_restart(written: Path) -> None:
    server = open_vault(written)  # a long-running process, started before the rotation
    operator = open_vault(written)
    old_id = server.master_keys().current_key_id()
    operator.key_material().add_master_key()
    use_cases(operator).rotation.rotate_master(OWNER)
    new_id = operator.master_keys().current_key_id()
    assert new_id != old_id
    assert reveal(server) == CANARY  # a data key under the new key: re-read once, not a 500 until restart

    server.vault_keys().refresh_seconds = 0.0  # the 5 s refresh is due (the gunicorn drill waits for real)
    write(server, "written.after")
    with sqlite3.connect(written / "vault.db") as conn:
        (used,) = conn.execute("SELECT master_key_id FROM secret_kv WHERE key_name = 'written.after'").fetchone()
    assert used == new_id
    close(server)
    close(operator)
