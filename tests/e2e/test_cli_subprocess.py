"""Real `sprongus` processes on a temporary SPRONGUS_HOME: what a user at a shell (or a script) sees.

Each process costs ~0.3-0.5 s, so every test here drives a whole scenario with a handful of them.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, add_trigger, one_error_line, run_on_terminal, tamper_ciphertext
from tests.harness import CANARY, numbered

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain, a pty and /proc")

FALLBACK_WARNING = "no OS keychain is available"


def test_a_fresh_machine_needs_no_set_up_and_warns_about_the_key_file_once(machine: Machine) -> None:
    assert not machine.home.exists()

    first = machine.ok("secrets", "set", SCOPE, "k", "-", input="tok\n")
    second = machine.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes")

    assert first.stdout == f"created {SCOPE} k (version 1)\n"
    assert first.stderr.count(FALLBACK_WARNING) == 1
    assert str(machine.home / "master.key") in first.stderr
    assert stat.S_IMODE((machine.home / "master.key").stat().st_mode) == 0o600
    assert (machine.home / "vault.db").exists()
    assert second.stdout == "tok\n"
    assert second.stderr == ""


def test_without_sprongus_home_the_vault_lives_in_the_user_dirs(machine: Machine) -> None:
    no_home = {"SPRONGUS_HOME": ""}  # empty counts as unset

    first = machine.ok("secrets", "set", SCOPE, "k", "-", input="tok\n", env=no_home)
    second = machine.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes", env=no_home)

    assert first.stderr.count(FALLBACK_WARNING) == 1
    assert (machine.root / "user/.local/share/sprongus/vault.db").exists()  # platformdirs' user data dir
    assert stat.S_IMODE((machine.root / "user/.config/sprongus/master.key").stat().st_mode) == 0o600
    assert (second.stdout, second.stderr) == ("tok\n", "")
    assert not machine.home.exists()


def test_set_from_every_source_then_get_masked_and_reveal(machine: Machine, tmp_path: Path) -> None:
    value_file = tmp_path / "value.txt"
    value_file.write_bytes(b"from file\r\nsecond line\r\n")

    argv = machine.ok("secrets", "set", SCOPE, "from.argv", "argv-value")
    machine.ok("secrets", "set", SCOPE, "from.stdin", "-", input="stdin value\n\n")
    machine.ok("secrets", "set", SCOPE, "from.file", "--file", str(value_file), "--meta", "kind=file")
    machine.ok("secrets", "set", SCOPE, "from.json", "--json", "-", input='{"a":  [1, 2]}\n')
    bad_json = machine.run("secrets", "set", SCOPE, "bad.json", "--json", "-", input="{nope\n")

    assert "shell history" in argv.stderr
    assert bad_json.returncode == 2
    one_error_line(bad_json.stderr, naming="json")
    assert machine.ok("secrets", "get", SCOPE, "from.argv", "--reveal", "--yes").stdout_bytes == b"argv-value\n"
    assert machine.ok("secrets", "get", SCOPE, "from.stdin", "--reveal", "--yes").stdout_bytes == b"stdin value\n\n"
    assert machine.ok("secrets", "get", SCOPE, "from.file", "--reveal", "--yes", "--no-newline").stdout_bytes == (
        b"from file\r\nsecond line\r\n")
    assert json.loads(machine.ok("secrets", "get", SCOPE, "from.json", "--reveal", "--yes", "--json").stdout)[
        "value"] == '{"a":  [1, 2]}'

    table = machine.ok("secrets", "get", SCOPE, "from.file").stdout
    record = json.loads(machine.ok("secrets", "get", SCOPE, "from.file", "--json").stdout)
    assert "value:    ********" in table
    assert "from file" not in table
    assert (record["value"], record["masked"], record["meta"]) == ("********", True, {"kind": "file"})


@pytest.mark.parametrize(("answer", "code", "shown"), [(b"y\n", 0, True), (b"n\n", 4, False), (b"\n", 4, False)],
                         ids=["yes", "no", "default-no"])
def test_reveal_on_a_terminal_asks_for_confirmation(machine: Machine, answer: bytes, code: int,
                                                    shown: bool) -> None:
    machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)

    returncode, screen = run_on_terminal(machine, ["secrets", "get", SCOPE, "k", "--reveal"], [(b"[y/N]", answer)])

    assert b"Reveal the value of k in project:p1? [y/N]" in screen
    assert returncode == code
    assert (CANARY.encode() in screen) is shown
    if not shown:
        assert b"confirmation refused" in screen


def test_set_on_a_terminal_prompts_twice_without_echo(machine: Machine) -> None:
    replies = [(b"Value: ", CANARY.encode() + b"\n"), (b"Repeat for confirmation: ", CANARY.encode() + b"\n")]

    returncode, screen = run_on_terminal(machine, ["secrets", "set", SCOPE, "k"], replies)

    assert returncode == 0, screen
    assert CANARY.encode() not in screen  # hidden input: never echoed
    assert b"created project:p1 k (version 1)" in screen
    assert machine.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes").stdout == CANARY + "\n"


def test_long_work_shows_progress_on_a_terminal(machine: Machine, tmp_path: Path) -> None:
    env_file = tmp_path / "many.env"
    env_file.write_text("".join(f"K{i}={CANARY}-{i}\n" for i in range(5)))

    imported = run_on_terminal(machine, ["secrets", "import", "--file", str(env_file), "--scope", SCOPE,
                                         "--allow-plaintext"], [])
    rotated = run_on_terminal(machine, ["secrets", "rotate", SCOPE], [])
    rewrapped = run_on_terminal(machine, ["keys", "rotate-master"], [])

    assert [code for code, _ in (imported, rotated, rewrapped)] == [0, 0, 0]
    assert b"importing" in imported[1] and b"100%" in imported[1]
    assert b"rotating" in rotated[1] and b"100%" in rotated[1]  # a bar like the others, not a bare counter
    assert b"re-wrapping" in rewrapped[1] and b"100%" in rewrapped[1]
    assert all(CANARY.encode() not in screen for _, screen in (imported, rotated, rewrapped))


def values_of(machine: Machine, home: Path | None = None, env: dict[str, str] | None = None) -> dict[str, str]:
    """Every value of SCOPE in one process: `secrets run` hands them to a child that dumps them as JSON."""
    script = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('S_')}))"
    proc = machine.ok("secrets", "run", SCOPE, "--prefix", "S_", "--", sys.executable, "-c", script, home=home,
                      env=env)
    return dict(sorted(json.loads(proc.stdout).items()))


def test_import_dry_run_merge_and_replace(machine: Machine, tmp_path: Path) -> None:
    seed, update = tmp_path / "seed.env", tmp_path / "update.json"
    seed.write_text("export S_A=old\nS_C='old c'\nS_MULTI=\"one\ntwo\"\n")
    update.write_text(json.dumps({"S_A": "new", "S_B": "added"}))
    machine.ok("secrets", "import", "--file", str(seed), "--scope", SCOPE, "--allow-plaintext")

    refused = machine.run("secrets", "import", "--file", str(update), "--scope", SCOPE)
    dry = machine.ok("secrets", "import", "--file", str(update), "--scope", SCOPE, "--allow-plaintext", "--replace",
                     "--dry-run")
    assert values_of(machine) == {"S_A": "old", "S_C": "old c", "S_MULTI": "one\ntwo"}

    merge = machine.ok("secrets", "import", "--file", str(update), "--scope", SCOPE, "--allow-plaintext")
    assert values_of(machine) == {"S_A": "new", "S_B": "added", "S_C": "old c", "S_MULTI": "one\ntwo"}

    machine.ok("secrets", "import", "--file", str(update), "--scope", SCOPE, "--allow-plaintext", "--replace")
    assert values_of(machine) == {"S_A": "new", "S_B": "added"}

    assert refused.returncode == 2
    one_error_line(refused.stderr, naming="plaintext")
    assert sorted(dry.stdout.splitlines()) == [f"+ {SCOPE} S_B", f"- {SCOPE} S_C", f"- {SCOPE} S_MULTI",
                                               f"~ {SCOPE} S_A"]
    assert "would import 1 added, 1 changed, 2 removed" in dry.stderr
    assert merge.stdout == "imported: 1 added, 1 changed, 0 removed\n"


def test_bundles_move_to_a_home_with_the_same_key_file_or_with_a_passphrase(machine: Machine,
                                                                            tmp_path: Path) -> None:
    twin, stranger = tmp_path / "twin", tmp_path / "stranger"
    bundle, sealed, passphrase = tmp_path / "bundle.json", tmp_path / "sealed.json", tmp_path / "pass.txt"
    passphrase.write_text("a long enough passphrase\n")
    machine.ok("secrets", "set", SCOPE, "S_TOKEN", "-", input=CANARY)
    machine.ok("secrets", "set", SCOPE, "S_OTHER", "-", input="other")
    machine.ok("secrets", "export", SCOPE, "--bundle", "--out", str(bundle))
    machine.ok("secrets", "export", SCOPE, "--bundle", "--passphrase-file", str(passphrase), "--out", str(sealed))
    same_key = {"SPRONGUS_KEY_FILE": str(machine.home / "master.key")}

    machine.ok("secrets", "import", "--file", str(bundle), home=twin, env=same_key)
    machine.ok("secrets", "import", "--file", str(sealed), "--passphrase-file", str(passphrase), home=stranger)

    assert CANARY not in bundle.read_text() + sealed.read_text()
    assert values_of(machine, twin, same_key) == {"S_OTHER": "other", "S_TOKEN": CANARY}
    assert not (twin / "master.key").exists()
    assert (stranger / "master.key").read_bytes() != (machine.home / "master.key").read_bytes()
    assert values_of(machine, stranger) == {"S_OTHER": "other", "S_TOKEN": CANARY}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Machine:
    """One home for the read-only scenarios below."""
    machine = Machine(tmp_path_factory.mktemp("shared"))
    machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)
    return machine


@pytest.mark.parametrize(("args", "code", "naming"), [
    (["secrets", "list", "bogus:scope"], 2, "scope"),
    (["secrets", "set", SCOPE, "9k", "-"], 2, "key"),
    (["secrets", "get", SCOPE, "missing"], 3, "missing"),
    (["secrets", "unset", SCOPE, "missing"], 3, "missing"),
    (["secrets", "get", SCOPE, "k", "--reveal"], 4, "--yes"),
])
def test_exit_codes_of_usage_not_found_and_refused(shared: Machine, args: list[str], code: int,
                                                   naming: str) -> None:
    proc = shared.run(*args)

    assert proc.returncode == code
    one_error_line(proc.stderr, naming=naming)
    assert proc.stdout == ""
    assert CANARY not in proc.stderr


def test_exit_code_of_a_bad_setting(shared: Machine) -> None:
    proc = shared.run("secrets", "list", SCOPE, env={"SPRONGUS_KEY_PROVIDER": "floppy"})

    assert proc.returncode == 2
    one_error_line(proc.stderr, naming="SPRONGUS_KEY_PROVIDER")


def test_run_passes_the_exit_code_through(shared: Machine) -> None:
    assert shared.run("secrets", "run", SCOPE, "--", sys.executable, "-c", "raise SystemExit(42)").returncode == 42


def test_exit_codes_5_7_and_8_on_a_damaged_vault(machine: Machine, tmp_path: Path) -> None:
    machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)
    machine.ok("secrets", "set", SCOPE, "other", "-", input=CANARY)
    db = machine.home / "vault.db"

    tamper_ciphertext(db, "k")
    tampered = machine.run("secrets", "get", SCOPE, "k", "--reveal", "--yes")
    add_trigger(db, "secret_kv", "UNIQUE constraint failed: secret_kv.key_name")
    lost_race = machine.run("secrets", "set", SCOPE, "new", "-", input=CANARY)
    add_trigger(db, "audit_event", "disk full")
    no_audit = machine.run("secrets", "get", SCOPE, "other", "--reveal", "--yes")

    # A failing audit store is an outage: 8, "try again" (was 1).
    assert (tampered.returncode, lost_race.returncode, no_audit.returncode) == (7, 5, 8)
    one_error_line(tampered.stderr, naming="integrity")
    one_error_line(lost_race.stderr, naming="concurrently")
    one_error_line(no_audit.stderr, naming="audit")
    for proc in (tampered, lost_race, no_audit):
        assert proc.stdout == ""
        assert CANARY not in proc.stderr


def test_exit_code_7_with_another_installations_master_key(machine: Machine, tmp_path: Path) -> None:
    other = tmp_path / "other"
    machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)
    machine.ok("secrets", "set", SCOPE, "x", "-", input="y", home=other)
    shutil.copy2(other / "master.key", machine.home / "master.key")

    proc = machine.run("secrets", "get", SCOPE, "k", "--reveal", "--yes")

    assert proc.returncode == 7
    one_error_line(proc.stderr, naming="the master key does not match this vault")
    assert CANARY not in proc.stdout + proc.stderr


def test_keys_rotate_master_then_status(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, "S_K", "-", input="v")

    rotated = machine.ok("keys", "rotate-master")
    status = json.loads(machine.ok("keys", "status", "--json").stdout)

    assert numbered(rotated.stdout) == "re-wrapped 1 secret onto file:v2\n"
    assert numbered(status) == {"provider": "file", "location": str(machine.home / "master.key"),
                                "currentKeyId": "file:v2", "hmacKeyId": "file:h2",
                                "secretsByMasterKey": {"file:v2": 1}, "vaultKeys": {"file:v1": "opens",
                                                                                    "file:v2": "current"}}
    assert values_of(machine) == {"S_K": "v"}


def test_a_reader_that_leaves_early_gets_no_error_report(machine: Machine) -> None:
    machine.ok("secrets", "import", "--file", "/dev/stdin", "--format", "json", "--scope", "project:p1",
               "--allow-plaintext", input=json.dumps({f"K{i:04d}": "v" for i in range(2000)}))
    reader = subprocess.Popen(machine.argv("secrets", "list", "project:p1"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=machine.env(), cwd=machine.root)
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.readline()
    reader.stdout.close()  # like `| head -1`
    stderr = reader.stderr.read().decode()
    reader.wait(timeout=60)
    assert "error" not in stderr and "Traceback" not in stderr
