"""`secrets export --out`: a new 0600 file, never an existing one without --force, never through a symlink.

Someone who can write the target folder (a shared checkout, /tmp) must not be able to redirect the export into
another file of the user's (a planted symlink at the target or at a temp name they can predict), and an export
must not silently overwrite a file that is already there.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, Vault, one_error_line
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: symlinks and no OS keychain")

VICTIM_TEXT = "the user's own file\n"


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Machine:
    machine = Machine(tmp_path_factory.mktemp("exporter"))
    machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)
    return machine


def victim(directory: Path) -> Path:
    path = directory / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def is_private_export(path: Path) -> bool:
    info = path.lstat()
    return (stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
            and json.loads(path.read_text())["format"] == "sprongus.bundle.v1")


def test_an_existing_file_needs_force(exporter: Machine, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    out.write_text("keep me\n")

    refused = exporter.run("secrets", "export", SCOPE, "--bundle", "--out", str(out))

    assert refused.returncode == 2
    assert one_error_line(refused.stderr, naming="--force") == \
        "error: out: the file already exists; pass --force to replace it"
    assert out.read_text() == "keep me\n"

    exporter.ok("secrets", "export", SCOPE, "--bundle", "--out", str(out), "--force")
    assert is_private_export(out)
    assert CANARY not in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]  # no temp file left behind


def test_a_new_file_is_created_0600_even_with_a_permissive_umask(exporter: Machine, tmp_path: Path) -> None:
    out = tmp_path / "new.json"
    old = os.umask(0)  # inherited by the child process
    try:
        exporter.ok("secrets", "export", SCOPE, "--bundle", "--out", str(out))
    finally:
        os.umask(old)
    assert is_private_export(out)


def test_a_symlink_planted_at_the_destination_is_never_written_through(exporter: Machine, tmp_path: Path) -> None:
    target = victim(tmp_path)
    out = tmp_path / "export.json"
    out.symlink_to(target)
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "would-be-created.txt")

    refused = exporter.run("secrets", "export", SCOPE, "--bundle", "--out", str(out))
    refused_dangling = exporter.run("secrets", "export", SCOPE, "--bundle", "--out", str(dangling))

    for proc in (refused, refused_dangling):
        assert proc.returncode == 2
        one_error_line(proc.stderr, naming="--force")
    assert out.is_symlink() and dangling.is_symlink()
    assert not (tmp_path / "would-be-created.txt").exists()

    # --force replaces the link itself: the file it pointed at is untouched.
    exporter.ok("secrets", "export", SCOPE, "--bundle", "--out", str(out), "--force")
    assert is_private_export(out)
    assert target.read_text() == VICTIM_TEXT


def test_a_symlink_planted_at_the_old_temp_name_is_never_followed(seeded: Vault, tmp_path: Path) -> None:
    # The previous release wrote `.<name>.<pid>.tmp` beside the target: in-process, the pid is this one's.
    folder = tmp_path / "shared"
    folder.mkdir()
    target = victim(folder)
    out = folder / "export.json"
    planted = folder / f".{out.name}.{os.getpid()}.tmp"
    planted.symlink_to(target)

    created = seeded("secrets", "export", SCOPE, "--bundle", "--out", str(out))
    replaced = seeded("secrets", "export", SCOPE, "--bundle", "--out", str(out), "--force")

    assert (created.exit_code, replaced.exit_code) == (0, 0), created.stderr + replaced.stderr
    assert target.read_text() == VICTIM_TEXT
    assert planted.is_symlink()
    assert is_private_export(out)
    assert sorted(p.name for p in folder.iterdir()) == sorted([out.name, planted.name, target.name])


def test_force_without_out_is_refused(exporter: Machine) -> None:
    proc = exporter.run("secrets", "export", SCOPE, "--force")

    assert proc.returncode == 2
    one_error_line(proc.stderr, naming="--out")
    assert proc.stdout == ""
