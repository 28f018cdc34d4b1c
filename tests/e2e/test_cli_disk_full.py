"""Disk-full drills: real `sprongus` processes on a 2 MiB tmpfs as SPRONGUS_HOME (vault, WAL and key file on it).

A full disk is an outage: exit 8 with the one line `error: no space left on device`, never "disk I/O error",
"cannot rollback - no transaction is active" or "cannot start key material: OSError". Masked reads keep working
(they write nothing); a reveal, which must be audited, fails closed. Once space is back, nothing acknowledged is
lost. Mounting needs root (or CAP_SYS_ADMIN): elsewhere these tests skip and say so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, Proc
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: tmpfs and no OS keychain")
DISK_FULL = "error: no space left on device"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command to make a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 2 MiB tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the file system refuses another byte."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (64 * 1024, 4096, 512, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def only_line(proc: Proc, expected: str = DISK_FULL) -> None:
    """Exit 8 and exactly one line on stderr: the cause, no traceback, no value."""
    assert proc.returncode == 8, (proc.returncode, proc.stderr)
    assert proc.stderr.splitlines() == [expected], proc.stderr
    assert CANARY not in proc.stdout + proc.stderr


def test_a_full_disk_refuses_writes_and_reveals_keeps_masked_reads_and_loses_nothing(small_disk: Path) -> None:
    machine = Machine(small_disk.parent)
    machine.home = small_disk / "home"
    items = [{"scope": SCOPE, "key": key, "value": f"{CANARY}-{key}"} for key in ("a", "b")]
    (small_disk.parent / "secrets.json").write_text(json.dumps({"items": items}))
    machine.ok("secrets", "import", "--file", str(small_disk.parent / "secrets.json"), "--allow-plaintext")
    filler = fill(small_disk)

    only_line(machine.run("secrets", "set", SCOPE, "c", "-", input=f"{CANARY}-c"))
    masked = machine.run("secrets", "get", SCOPE, "a", "--json")
    listed = machine.run("secrets", "list", SCOPE, "--json")
    assert (masked.returncode, listed.returncode) == (0, 0), (masked.stderr, listed.stderr)
    assert json.loads(masked.stdout)["version"] == 1
    assert [item["keyName"] for item in json.loads(listed.stdout)["items"]] == ["a", "b"]
    # Every reveal is audited: no audit row, no value. `keys verify` reads, then records its own audit row.
    reveal = machine.run("secrets", "get", SCOPE, "a", "--reveal", "--yes")
    only_line(reveal, "error: audit event could not be recorded (no space left on device); action refused")
    assert reveal.stdout == ""
    verify = machine.run("keys", "verify")
    only_line(verify, "error: audit event could not be recorded (no space left on device); action refused")
    assert "PROBLEMS FOUND" not in verify.stdout + verify.stderr

    filler.unlink()
    machine.ok("secrets", "set", SCOPE, "c", "-", input=f"{CANARY}-c")
    shown = machine.ok("secrets", "run", SCOPE, "--", sys.executable, "-c",
                       "import os; print(os.environ['A'], os.environ['B'], os.environ['C'])")
    assert shown.stdout == f"{CANARY}-a {CANARY}-b {CANARY}-c\n"
    assert machine.ok("keys", "verify").stdout == "checked 3 secrets: ok\n"


def test_a_new_vault_on_a_full_disk_says_so(small_disk: Path) -> None:
    machine = Machine(small_disk.parent)
    machine.home = small_disk / "home"
    fill(small_disk)

    only_line(machine.run("secrets", "set", SCOPE, "a", "-", input=CANARY))
    only_line(machine.run("secrets", "list", SCOPE))
    # The vault elsewhere, the key file on the full disk: the first write cannot create it.
    key_file = {"SPRONGUS_KEY_FILE": str(small_disk / "keys" / "master.key")}
    only_line(machine.run("secrets", "set", SCOPE, "a", "-", input=CANARY, home=small_disk.parent / "roomy",
                          env=key_file))
    assert not (small_disk / "keys" / "master.key").exists()


def test_secrets_run_keeps_the_wal_small(machine: Machine, tmp_path: Path) -> None:
    # Each reveal commits its audit row: with SQLite's default checkpoint every 1,000 pages, 400 reveals grew the
    # WAL past a megabyte within one `secrets run`. The command itself measures the WAL while sprongus holds it.
    items = [{"scope": SCOPE, "key": f"k{i:03}", "value": f"value-{i}"} for i in range(400)]
    (tmp_path / "secrets.json").write_text(json.dumps({"items": items}))
    machine.ok("secrets", "import", "--file", str(tmp_path / "secrets.json"), "--allow-plaintext")
    wal = machine.home / "vault.db-wal"
    probe = (f"import os; print(os.path.getsize({str(wal)!r}), "
             "sum(name.startswith('K') and name[1:].isdigit() for name in os.environ))")

    proc = machine.ok("secrets", "run", SCOPE, "--", sys.executable, "-c", probe)

    size, revealed = map(int, proc.stdout.split())
    assert revealed == 400
    assert size < 256 * 1024, size
    assert not wal.exists() or os.path.getsize(wal) < 256 * 1024
