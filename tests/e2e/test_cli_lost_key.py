"""A lost or replaced key file, as a user at a shell meets it: real `sprongus` processes, exit 7, nothing written.

On release 1 the next command after deleting `master.key` printed the first-use warning, made a new key with the
same id and answered `set` with "updated" under the wrong key.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, one_error_line
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain reachable")

MISMATCH = "the master key does not match this vault"


def table_rows(home: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(home / "vault.db") as conn:
        return (conn.execute("SELECT * FROM secret_kv ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM vault_key ORDER BY key_id").fetchall())


def test_a_deleted_key_file_stops_every_command_and_no_new_key_appears(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, "db.password", "-", input=f"{CANARY}\n")
    key_file = machine.home / "master.key"
    key_file.unlink()
    before = table_rows(machine.home)

    for args, given in ((("secrets", "set", SCOPE, "db.password", "-"), "replacement\n"),
                        (("secrets", "get", SCOPE, "db.password", "--reveal", "--yes"), None),
                        (("secrets", "list", SCOPE), None),
                        (("keys", "status"), None)):
        proc = machine.run(*args, input=given)
        assert proc.returncode == 7, (args, proc.stderr)
        line = one_error_line(proc.stderr, naming=MISMATCH)
        assert "no OS keychain is available" not in proc.stderr  # the first-use warning of a new key
        assert CANARY not in proc.stderr + proc.stdout and "replacement" not in line
        assert not key_file.exists()
    assert table_rows(machine.home) == before


def test_another_vaults_key_file_is_refused_until_the_right_one_is_back(machine: Machine, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    machine.ok("secrets", "set", SCOPE, "db.password", "-", input=f"{CANARY}\n")
    machine.ok("secrets", "set", SCOPE, "theirs", "-", input="their value\n", home=other)
    backup = (machine.home / "master.key").read_bytes()
    shutil.copy(other / "master.key", machine.home / "master.key")
    before = table_rows(machine.home)

    proc = machine.run("secrets", "set", SCOPE, "db.password", "-", input="under the wrong key\n")
    assert proc.returncode == 7
    one_error_line(proc.stderr, naming=MISMATCH)
    assert table_rows(machine.home) == before  # no row, no key record: nothing written

    (machine.home / "master.key").write_bytes(backup)
    assert machine.ok("secrets", "get", SCOPE, "db.password", "--reveal", "--yes").stdout == f"{CANARY}\n"


def test_reads_on_a_new_machine_make_no_key_and_keys_status_says_so(machine: Machine) -> None:
    listed = machine.ok("secrets", "list", SCOPE)
    status = machine.ok("keys", "status")
    assert not (machine.home / "master.key").exists()
    assert "no OS keychain is available" not in listed.stderr + status.stderr
    assert "none yet (the first write creates it)" in status.stdout
    machine.ok("secrets", "set", SCOPE, "k", "-", input="v\n")
    status = machine.ok("keys", "status")
    assert "current key: file:v1-" in status.stdout and "hmac key:    file:h1-" in status.stdout
