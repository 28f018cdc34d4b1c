"""An existing vault, WAL or SHM file that other users may access is refused like the key file (exit 7), and new
vault files are private (real `sprongus` processes, real files).

The vault file holds every ciphertext, the audit trail and the token hashes; SQLite gives its -wal and -shm files
the vault file's mode. A copy restored with a loose umask used to be opened silently, and stayed exposed.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, one_error_line
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: POSIX file modes, no OS keychain")


@pytest.fixture
def stocked(machine: Machine) -> Machine:
    machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)
    return machine


@pytest.mark.parametrize(("name", "mode"), [("vault.db", 0o644), ("vault.db-wal", 0o644), ("vault.db-shm", 0o644),
                                           ("vault.db", 0o640), ("vault.db", 0o604), ("vault.db-wal", 0o602)],
                         ids=lambda value: value if isinstance(value, str) else f"{value:o}")
def test_a_vault_file_others_can_access_is_refused(stocked: Machine, name: str, mode: int) -> None:
    path = stocked.home / name
    if not path.exists():  # -wal and -shm exist only while the vault is open: leave one behind, as a crash would
        path.touch()
    path.chmod(mode)

    refused = stocked.run("secrets", "get", SCOPE, "k", "--reveal", "--yes")
    upgrade = stocked.run("db", "upgrade")

    for proc in (refused, upgrade):
        assert proc.returncode == 7, proc.stderr
        line = one_error_line(proc.stderr)
        assert line == (f"error: vault file {path} is accessible by other users (mode {mode:o}); "
                        f"run: chmod 600 {path}")
        assert CANARY not in proc.stdout + proc.stderr
    assert stat.S_IMODE(path.stat().st_mode) == mode  # refused, not silently "fixed"

    path.chmod(0o600)
    assert stocked.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes").stdout == CANARY + "\n"


def test_a_new_vault_is_private_even_with_a_permissive_umask(machine: Machine) -> None:
    old = os.umask(0)  # inherited by the child process
    try:
        machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)
        machine.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes")
    finally:
        os.umask(old)

    vault_files = [p for p in machine.home.iterdir() if p.name.startswith("vault.db")]
    assert vault_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in vault_files)
    assert stat.S_IMODE(machine.home.stat().st_mode) == 0o700


def test_directories_made_above_a_new_vault_are_private_too_with_a_permissive_umask(machine: Machine) -> None:
    """mkdir(parents=True) gave its mode to the last directory only: under umask 000 the ones above it were 0777,
    where another user could rename them and put their own in place."""
    home = machine.root / "made" / "for" / "sprongus"
    existing = stat.S_IMODE(machine.root.stat().st_mode)
    old = os.umask(0)
    try:
        machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY, home=home)
    finally:
        os.umask(old)
    made = [home, home.parent, home.parent.parent]
    assert [oct(stat.S_IMODE(d.stat().st_mode)) for d in made] == [oct(0o700)] * 3
    assert stat.S_IMODE(machine.root.stat().st_mode) == existing  # an existing directory is left as it was


def test_a_private_leftover_wal_file_is_accepted(stocked: Machine, tmp_path: Path) -> None:
    wal = stocked.home / "vault.db-wal"
    wal.touch(mode=0o600)

    assert stocked.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes").stdout == CANARY + "\n"
