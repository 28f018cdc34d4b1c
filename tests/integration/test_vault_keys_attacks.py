"""The vault's key records under attack and under faults: outages while HMAC keys load, junk rows written by
someone with the database but not the key, two first writers with two keys, keys added by other processes.

Real SQLite vaults built by the real container, env keys (so every key and id is the test's choice).
"""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sprongus.domain.errors import (
    ConfigError,
    KeyAccessDenied,
    KeyProviderUnavailable,
    MasterKeyChanged,
    VaultKeyMismatch,
)
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container, build_container
from sprongus.service.vault_hmac import hmac_aad
from tests.harness import CANARY, use_cases
from tests.integration.owner_ops import OWNER, SCOPE, reveal, write


def key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def open_vault(home: Path, master_keys: str) -> Container:
    return build_container(Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home),
                                                  "SPRONGUS_KEY_PROVIDER": "env", "SPRONGUS_MASTER_KEYS": master_keys}))


def sql(home: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "vault.db") as conn:
        return conn.execute(statement, args).fetchall()




@pytest.fixture
def vaults() -> Iterator[list[Container]]:
    opened: list[Container] = []
    yield opened
    for vault in opened:
        vault.database().db.close()


# The label of the AAD every HMAC-key wrap carries (hmac_aad's first part: a 4-byte length, then the label).
HMAC_KEY_AAD_LABEL = hmac_aad("")[:4 + len(b"sprongus.hmac-key.v1")]


@pytest.mark.parametrize("fault", [KeyProviderUnavailable("the KMS did not answer"),  # exit 8 / 503
                                   KeyAccessDenied("the KMS refused this identity")],  # exit 2: fix the permission
                         ids=type)
def test_a_kms_fault_while_hmac_keys_load_is_that_fault_not_tampering(tmp_path: Path, vaults: list[Container],
                                                                     fault: Exception) -> None:
    k1 = key("k1")
    vaults.append(first := open_vault(tmp_path, k1))
    write(first)
    vaults.append(second := open_vault(tmp_path, k1))
    keys = second.master_keys()
    real_unwrap, faulty = keys.unwrap, {"on": True}

    def flaky(blob: bytes, key_id: str, aad: bytes) -> bytes:
        if faulty["on"] and aad.startswith(HMAC_KEY_AAD_LABEL):
            raise fault
        return real_unwrap(blob, key_id, aad)

    keys.unwrap = flaky  # type: ignore[method-assign]
    for _ in range(3):
        with pytest.raises(type(fault)):  # never "integrity check failed"
            reveal(second)
    faulty["on"] = False
    assert reveal(second) == CANARY  # tried again, not remembered as a missing key
    assert use_cases(second).rotation.verify(OWNER).ok
    assert len(sql(tmp_path, "SELECT key_id FROM vault_key WHERE kind = 'hmac'")) == 1  # no key minted


def test_a_junk_hmac_row_does_not_stop_rotate_master_and_its_key_is_not_called_unused(
        tmp_path: Path, vaults: list[Container]) -> None:
    k1, k2 = key("k1"), key("k2")
    vaults.append(vault := open_vault(tmp_path, k1))
    write(vault)
    sql(tmp_path, "INSERT INTO vault_key VALUES ('hmac', 'h0-00000000', 'AAAA', 'env:k1', '2000-01-01T00:00:00+00:00')")
    states = {s.key_id: s.hmac_keys for s in vault.vault_keys().states()}
    assert states == {"env:k1": 2}  # it wraps the vault's HMAC keys: status keeps it "in use"

    vaults.append(rotated := open_vault(tmp_path, f"{k2},{k1}"))
    use_cases(rotated).rotation.rotate_master(OWNER)
    masters = dict(sql(tmp_path, "SELECT key_id, master_key_id FROM vault_key WHERE kind = 'hmac'"))
    assert masters["h0-00000000"] == "env:k1" and [m for k, m in masters.items() if k != "h0-00000000"] == ["env:k2"]

    vaults.append(only_new := open_vault(tmp_path, k2))
    assert reveal(only_new) == CANARY and use_cases(only_new).rotation.verify(OWNER).ok


def test_two_first_writers_with_two_keys_cannot_both_write(tmp_path: Path, vaults: list[Container]) -> None:
    vaults.append(a := open_vault(tmp_path, key("ka")))
    vaults.append(b := open_vault(tmp_path, key("kb")))  # both started on an empty vault: both checks pass
    write(a, "from.a")
    with pytest.raises(VaultKeyMismatch):
        write(b, "from.b")
    assert sql(tmp_path, "SELECT key_name, master_key_id FROM secret_kv") == [("from.a", "env:ka")]
    assert [k for (k,) in sql(tmp_path, "SELECT key_id FROM vault_key WHERE kind = 'master'")] == ["env:ka"]


def test_junk_master_rows_written_without_the_key_lock_nobody_out(tmp_path: Path, vaults: list[Container]) -> None:
    k1, k2 = key("k1"), key("k2")
    vaults.append(vault := open_vault(tmp_path, k1))
    write(vault)
    sql(tmp_path, "UPDATE vault_key SET blob = 'AAAA' WHERE key_id = 'env:k1'")  # its own record damaged
    sql(tmp_path, "INSERT INTO vault_key VALUES ('master', 'env:k2', 'AAAA', 'env:k2', '2000-01-01T00:00:00+00:00')")

    vaults.append(same := open_vault(tmp_path, k1))  # the data it wrapped still opens: the right key
    assert reveal(same) == CANARY
    vaults.append(moved := open_vault(tmp_path, f"{k2},{k1}"))  # a future id "taken" by a junk row
    write(moved, "after")
    assert reveal(moved, "after") == CANARY
    with pytest.raises(VaultKeyMismatch):  # and still no other key passes: it opens nothing of the vault's
        open_vault(tmp_path, key("k1"))


def test_reads_record_nothing_and_a_new_key_is_recorded_by_its_first_write(tmp_path: Path,
                                                                         vaults: list[Container]) -> None:
    k1, k2 = key("k1"), key("k2")
    vaults.append(vault := open_vault(tmp_path, k1))
    write(vault)
    before = sql(tmp_path, "SELECT kind, key_id FROM vault_key")
    vaults.append(reader := open_vault(tmp_path, f"{k2},{k1}"))
    assert [v.key for v in use_cases(reader).secrets.list(OWNER, SCOPE).items] == ["db.password"]
    assert sql(tmp_path, "SELECT kind, key_id FROM vault_key") == before
    write(reader, "next")
    assert ("master", "env:k2") in sql(tmp_path, "SELECT kind, key_id FROM vault_key")


def test_a_master_key_bundle_export_of_a_new_vault_makes_no_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    vault = build_container(Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home),
                                                   "SPRONGUS_KEY_PROVIDER": "file"}), notice=lambda _: None)
    with pytest.raises(ConfigError, match="no master key yet"):
        use_cases(vault).transfer.export(OWNER, SCOPE, bundle=True)
    assert not (home / "master.key").exists()
    vault.database().db.close()


def test_rotate_hmac_in_another_process_signs_new_writes_in_a_running_one(tmp_path: Path,
                                                                          vaults: list[Container]) -> None:
    k1 = key("k1")
    vaults.append(server := open_vault(tmp_path, k1))
    write(server, "before")
    vaults.append(operator := open_vault(tmp_path, k1))
    new_id = operator.vault_keys().rotate_hmac()
    server.vault_keys().refresh_seconds = 0.0  # the refresh is due (its 5 s are the gunicorn drill's business)
    write(server, "after")
    (tag,) = sql(tmp_path, "SELECT hmac FROM secret_kv WHERE key_name = 'after'")[0]
    assert str(tag).startswith(f"{new_id}:")


def test_a_provider_that_refuses_this_identity_proves_nothing_about_a_new_key(tmp_path: Path,
                                                                             vaults: list[Container]) -> None:
    k1, k2 = key("k1"), key("k2")
    vaults.append(vault := open_vault(tmp_path, k1))
    write(vault)
    vaults.append(switched := open_vault(tmp_path, f"{k2},{k1}"))
    keys = switched.master_keys()
    real_unwrap = keys.unwrap

    def denied(blob: bytes, key_id: str, aad: bytes) -> bytes:
        if key_id == "env:k1":
            raise KeyAccessDenied("the KMS refused this identity")
        return real_unwrap(blob, key_id, aad)

    keys.unwrap = denied  # type: ignore[method-assign]
    with pytest.raises(KeyAccessDenied):  # exit 2: fix the permission; k2 is not recorded on its account
        write(switched, "new")
    assert ("master", "env:k2") not in sql(tmp_path, "SELECT kind, key_id FROM vault_key")


def test_a_kms_primary_version_that_changes_during_the_first_record_is_retried_not_misrecorded(
        tmp_path: Path, vaults: list[Container]) -> None:
    vaults.append(vault := open_vault(tmp_path, key("k1")))
    envelope = vault.envelope()
    real_wrap = envelope.wrap_key
    envelope.wrap_key = lambda k, aad: replace(real_wrap(k, aad), master_key_id="env:k9")  # type: ignore[method-assign]
    with pytest.raises(KeyProviderUnavailable, match="changed while it was checked"):  # exit 8: try again
        write(vault)
    assert sql(tmp_path, "SELECT key_id FROM vault_key") == [] and sql(tmp_path, "SELECT * FROM secret_kv") == []
    envelope.wrap_key = real_wrap  # type: ignore[method-assign]
    write(vault)
    assert sql(tmp_path, "SELECT key_id FROM vault_key WHERE kind = 'master'") == [("env:k1",)]
    assert reveal(vault) == CANARY


def test_a_key_file_replaced_under_a_running_process_is_checked_before_it_writes(tmp_path: Path) -> None:
    def file_vault(home: Path) -> Container:
        return build_container(Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home),
                                                      "SPRONGUS_KEY_PROVIDER": "file"}), notice=lambda _: None)

    server, other = file_vault(tmp_path / "home"), file_vault(tmp_path / "other")
    write(server)
    write(other, "theirs")
    original = (tmp_path / "home" / "master.key").read_bytes()
    (tmp_path / "home" / "master.key").write_bytes((tmp_path / "other" / "master.key").read_bytes())
    server.vault_keys().refresh_seconds = 0.0  # the refresh re-reads the file (the gunicorn drill waits 5 s)
    before = sql(tmp_path / "home", "SELECT key_name, master_key_id FROM secret_kv")
    for _ in range(2):
        with pytest.raises(VaultKeyMismatch):
            write(server, "under.the.wrong.key")
    assert sql(tmp_path / "home", "SELECT key_name, master_key_id FROM secret_kv") == before
    assert len(sql(tmp_path / "home", "SELECT key_id FROM vault_key WHERE kind = 'master'")) == 1

    (tmp_path / "home" / "master.key").write_bytes(original)  # the right file back: no restart needed
    write(server, "after")
    assert reveal(server, "after") == CANARY
    for vault in (server, other):
        vault.database().db.close()


def test_junk_data_rows_under_the_next_key_id_do_not_refuse_the_right_key(tmp_path: Path,
                                                                         vaults: list[Container]) -> None:
    k1, k2 = key("k1"), key("k2")
    vaults.append(vault := open_vault(tmp_path, k1))
    write(vault)
    (row,) = sql(tmp_path, "SELECT * FROM secret_kv")
    junk = list(row)
    junk[0], junk[3], junk[8] = "junk-id", "junk.key", "env:k2"  # id, key_name, master_key_id: a planted row
    sql(tmp_path, f"INSERT INTO secret_kv VALUES ({', '.join('?' * len(junk))})", *junk)
    vaults.append(rotated := open_vault(tmp_path, f"{k2},{k1}"))  # the operator's next key: not refused
    write(rotated, "fresh")
    assert reveal(rotated, "fresh") == CANARY


def test_a_write_sealed_under_a_key_rotated_meanwhile_is_a_retryable_outage_that_says_so(
        tmp_path: Path, vaults: list[Container]) -> None:
    """Another process's `keys rotate-master` between this write's seal and its store: nothing is written, exit 8 /
    503, and the answer names what happened rather than blaming the key provider (seen in a rotation drill)."""
    from sprongus.entrypoints.api.problems import from_domain_error
    from sprongus.entrypoints.cli.errors import exit_code_for

    vaults.append(vault := open_vault(tmp_path, key("k1")))
    write(vault)
    sealer = vault.service_deps().sealer
    real_seal = sealer.envelope.seal
    sealer.envelope.seal = lambda *a, **kw: replace(real_seal(*a, **kw), master_key_id="env:k2")  # type: ignore
    with pytest.raises(MasterKeyChanged) as changed:
        write(vault, "during.rotation")
    assert exit_code_for(changed.value) == 8
    answer = from_domain_error(changed.value)
    assert answer.status_code == 503 and answer.get_json()["detail"] == MasterKeyChanged.public
    assert sql(tmp_path, "SELECT key_name FROM secret_kv WHERE key_name = 'during.rotation'") == []
