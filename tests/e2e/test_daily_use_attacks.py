"""Daily-use commands under attack, as real `sprongus` processes: completion on a locked, symlinked or hostile
vault; `secrets inject` with values that look like references, broken references next to values, binary and huge
templates, awkward --in/--out paths and concurrent runs; -q, NO_COLOR and the local-only refusals."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sprongus.entrypoints.cli import inject_template as tpl
from tests.e2e.conftest import SPRONGUS_CMD, Machine, one_error_line, run_on_terminal
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: a pty and no OS keychain")

LOOKS_LIKE_A_REFERENCE = "{{ sprongus://project/p1/other }}"


@pytest.fixture
def seeded(machine: Machine) -> Machine:
    items = [{"scope": "project:p1", "key": "api.token", "value": CANARY},
             {"scope": "project:p1", "key": "tricky", "value": f"{CANARY} {LOOKS_LIKE_A_REFERENCE}"},
             {"scope": "project:p1", "key": "other", "value": "must-not-be-expanded"}]
    (machine.root / "items.json").write_text(json.dumps({"items": items}))
    machine.ok("secrets", "import", "--file", "items.json", "--allow-plaintext")
    return machine


def _complete(machine: Machine, words: str, cword: int, home: Path | None = None,
              extra: Mapping[str, str] | None = None) -> tuple[list[str], float]:
    env = machine.env(home=home, extra={"COMP_WORDS": words, "COMP_CWORD": str(cword),
                                        "_SPRONGUS_COMPLETE": "bash_complete", **(extra or {})})
    started = time.monotonic()
    done = subprocess.run(SPRONGUS_CMD, env=env, capture_output=True, text=True, timeout=30, check=False,
                          cwd=machine.root)
    assert (done.returncode, done.stderr) == (0, ""), done
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line], time.monotonic() - started


def _audit_reveals(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM audit_event WHERE action LIKE '%reveal%'").fetchone()
    conn.close()
    return int(count)


# completion -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lock", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "locking_mode"])
def test_completion_on_a_locked_vault_answers_at_once_and_lists_no_value(seeded: Machine, lock: str) -> None:
    conn = sqlite3.connect(seeded.home / "vault.db", isolation_level=None)
    try:
        if lock == "locking_mode":  # a process that keeps the vault to itself until it closes it
            conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("SELECT count(*) FROM secret_kv").fetchall()
            conn.execute("COMMIT")
        else:
            conn.execute(lock)
            conn.execute("UPDATE secret_kv SET version = version WHERE key_name = 'other'")
        names, took = _complete(seeded, "sprongus secrets get project:p1 ", 4)
    finally:
        conn.close()
    assert took < 5
    assert CANARY not in str(names) and "must-not-be-expanded" not in str(names)
    assert set(names) <= {"api.token", "tricky", "other"}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown to another user")
def test_completion_does_not_follow_a_symlinked_vault_into_another_users_file(seeded: Machine) -> None:
    theirs = seeded.root / "theirs"
    theirs.mkdir(mode=0o755)
    shutil.copy(seeded.home / "vault.db", theirs / "vault.db")
    with sqlite3.connect(theirs / "vault.db") as conn:
        conn.execute("UPDATE secret_kv SET key_name = 'their.' || key_name, owner_id = 'theirs'")
    conn.close()  # the last connection: checkpointed, no WAL left
    for name in os.listdir(theirs):
        os.chown(theirs / name, 65534, 65534)
        os.chmod(theirs / name, 0o600)
    home = seeded.root / "planted"
    home.mkdir(mode=0o700)
    (home / "vault.db").symlink_to(theirs / "vault.db")

    names, _ = _complete(seeded, "sprongus secrets get project:theirs ", 4, home=home)
    scopes, _ = _complete(seeded, "sprongus secrets get ", 3, home=home)

    assert names == []
    assert scopes == ["user:", "project:", "system"]


def test_completion_follows_a_symlink_to_the_users_own_vault_and_sees_its_wal(seeded: Machine) -> None:
    home = seeded.root / "linked"
    home.mkdir(mode=0o700)
    (home / "vault.db").symlink_to(seeded.home / "vault.db")
    conn = sqlite3.connect(seeded.home / "vault.db", isolation_level=None)
    try:  # committed to the WAL beside the target, not yet checkpointed into the file
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("UPDATE secret_kv SET key_name = 'renamed' WHERE key_name = 'other'")
        names, _ = _complete(seeded, "sprongus secrets get project:p1 ", 4, home=home)
    finally:
        conn.close()
    assert "renamed" in names and "other" not in names


def test_completion_never_offers_a_name_a_shell_would_split_or_run(seeded: Machine) -> None:
    with sqlite3.connect(seeded.home / "vault.db") as conn:  # a vault written by another tool, or tampered with
        conn.execute("UPDATE secret_kv SET key_name = 'x; touch PWNED' || char(10) || 'plain,y' "
                     "WHERE key_name = 'other'")
        conn.execute("UPDATE secret_kv SET owner_id = 'p1 $(id)' WHERE key_name = 'tricky'")
    conn.close()
    keys, _ = _complete(seeded, "sprongus secrets get project:p1 ", 4)
    scopes, _ = _complete(seeded, "sprongus secrets get ", 3)
    assert keys == ["api.token"]
    assert scopes == ["user:", "project:", "system", "project:p1"]


# inject ---------------------------------------------------------------------------------------------------------

def _inject(machine: Machine, template: str | bytes, *args: str) -> tuple[int, bytes, str]:
    path = machine.root / "tpl.txt"
    path.write_bytes(template.encode() if isinstance(template, str) else template)
    proc = machine.run("secrets", "inject", "-i", str(path), "--yes", *args)
    return proc.returncode, proc.stdout_bytes, proc.stderr


def test_a_value_holding_a_reference_is_inserted_literally_never_resolved(seeded: Machine) -> None:
    db = seeded.home / "vault.db"
    before = _audit_reveals(db)
    code, out, _ = _inject(seeded, "a={{ sprongus://project/p1/tricky }}\nb={{ {{sprongus://project/p1/api.token}} }}")
    assert code == 0
    assert out.decode() == f"a={CANARY} {LOOKS_LIKE_A_REFERENCE}\nb={{{{ {CANARY} }}}}"
    assert b"must-not-be-expanded" not in out
    assert _audit_reveals(db) - before == 2  # tricky and api.token: `other` was never revealed


@pytest.mark.parametrize("template", [
    f"{CANARY} {{{{ sprongus://project/p1/{CANARY}!}}}}",
    f"x {{{{ sprongus://project/p1/api.token\n{CANARY} }}}}",
    f"{{{{ Sprongus://project/p1/api.token }}}} {CANARY}",
    f"{{{{ sprongus://team/{CANARY}/api.token }}}}",
    f"{{{{ sprongus://project/{CANARY}:x/api.token }}}}",
])
def test_a_malformed_reference_next_to_a_value_names_the_place_never_the_text(seeded: Machine, template: str) -> None:
    code, out, err = _inject(seeded, template)
    assert code == 2 and out == b""
    assert CANARY not in one_error_line(err, naming="line ")


def test_a_binary_template_is_refused_without_echoing_its_bytes(seeded: Machine) -> None:
    code, out, err = _inject(seeded, CANARY.encode() + b"\n\xff\xfe" + CANARY.encode())
    assert (code, out) == (2, b"")
    assert CANARY not in one_error_line(err, naming="line 2")


def test_a_huge_one_line_template_renders_in_linear_time() -> None:
    # Minified JSON: every reference on one line. Searching to the end of the line for each one was quadratic.
    refs = 100_000
    text = "{" + ",".join(f'"k{i}":"{{{{ sprongus://project/p1/k{i % 5000} }}}}"' for i in range(refs)) + "}"
    started = time.monotonic()
    parsed = tpl.parse(text)
    wanted = parsed.wanted()
    assert time.monotonic() - started < 5
    assert len(parsed.references) == refs and len(next(iter(wanted.values()))) == 5000


def test_in_and_out_on_one_path_directories_and_symlinks(seeded: Machine) -> None:
    template = seeded.root / "same.txt"
    template.write_text("t={{ sprongus://project/p1/api.token }}\n")
    refused = seeded.run("secrets", "inject", "-i", str(template), "-o", str(template), "--yes")
    assert refused.returncode == 2 and template.read_text().startswith("t={{")  # the template is kept
    forced = seeded.run("secrets", "inject", "-i", str(template), "-o", str(template), "--yes", "--force")
    assert forced.returncode == 0 and template.read_text() == f"t={CANARY}\n"
    assert (template.stat().st_mode & 0o777) == 0o600

    folder = seeded.root / "folder"
    folder.mkdir()
    for args in ([], ["--force"]):
        proc = seeded.run("secrets", "inject", "-i", str(template), "-o", str(folder), "--yes", *args)
        assert proc.returncode == 2 and CANARY not in proc.stderr
    victim = seeded.root / "victim.txt"
    victim.write_text("keep me")
    (seeded.root / "link.txt").symlink_to(victim)
    proc = seeded.run("secrets", "inject", "-i", str(template), "-o", str(seeded.root / "link.txt"), "--yes",
                      "--force")
    assert proc.returncode == 0 and victim.read_text() == "keep me"  # the link is replaced, not written through


def test_concurrent_injects_each_audit_their_reveals(seeded: Machine) -> None:
    db = seeded.home / "vault.db"
    before = _audit_reveals(db)
    template = seeded.root / "c.txt"
    template.write_text("{{ sprongus://project/p1/api.token }} {{ sprongus://project/p1/other }}")
    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(lambda _: seeded.run("secrets", "inject", "-i", str(template), "--yes"), range(6)))
    assert [proc.returncode for proc in runs] == [0] * 6, [proc.stderr for proc in runs]
    assert all(proc.stdout == f"{CANARY} must-not-be-expanded" for proc in runs)
    assert _audit_reveals(db) - before == 12


# -q, NO_COLOR, local-only ---------------------------------------------------------------------------------------

def test_quiet_keeps_warnings_and_errors(seeded: Machine) -> None:
    code, _, err = _inject(seeded, "no references here\n", "-o", str(seeded.root / "out.txt"))
    quiet = seeded.run("-q", "secrets", "inject", "-i", str(seeded.root / "tpl.txt"), "--yes")
    assert code == 0 and "warning:" in err
    assert quiet.returncode == 0 and "warning:" in quiet.stderr
    failed = seeded.run("-q", "secrets", "get", "project:p1", "missing")
    assert failed.returncode == 3 and failed.stderr.startswith("error:")


def test_no_color_leaves_tables_plain_on_a_terminal(seeded: Machine) -> None:
    code, screen = run_on_terminal(seeded, ["keys", "status"], [], env=seeded.env(extra={"NO_COLOR": "1"}))
    assert code == 0 and b"\x1b[" not in screen


@pytest.mark.parametrize("how", ["flag", "env"])
def test_local_only_commands_refuse_remote_before_any_vault_exists(machine: Machine, how: str) -> None:
    args = ["keys", "status", "--remote"] if how == "flag" else ["keys", "status"]
    proc = machine.run(*args, env={"SPRONGUS_REMOTE": "1"} if how == "env" else None)
    assert proc.returncode == 2 and "local only" in one_error_line(proc.stderr)
    assert not machine.home.exists()
    assert not list((machine.root / "user").rglob("*.key"))


def test_a_usage_error_never_echoes_a_stray_argument_that_may_be_a_value(machine: Machine) -> None:
    # Found by a review: Click's own usage errors repeated the stray words: `secrets set SCOPE KEY my secret` (an
    # unquoted value) printed `Got unexpected extra argument (secret)`, `get SCOPE KEY VALUE` printed the value.
    for args in (["secrets", "get", "project:p1", "api.token", CANARY],
                 ["secrets", "set", "project:p1", "api.token", "my", CANARY]):
        proc = machine.run(*args)
        assert proc.returncode == 2
        assert CANARY not in proc.stderr, proc.stderr
        assert "unexpected extra arguments" in proc.stderr
