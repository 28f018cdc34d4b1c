"""Input edges of daily CLI use, as real `sprongus` processes: a secret given on the command line that looks like an
option, prompt variables as key names, a JSON import repeating a name, a CRLF dotenv file and a passphrase file
that is not UTF-8. Each was found by an attack sweep; each answer is one line, never the value."""

from __future__ import annotations

import json

import pytest
from dotenv import dotenv_values

from tests.e2e.conftest import Machine, one_error_line
from tests.harness import CANARY

DASHED = f"--{CANARY}&3"  # a password that starts like an option


@pytest.mark.parametrize("args", [["secrets", "set", "project:p1", "db.password", DASHED],
                                  ["secrets", "set", "project:p1", "db.password", f"-{CANARY}"],
                                  ["secrets", "set", "project:p1", "db.password", DASHED, "--json"]])
def test_a_value_that_looks_like_an_option_is_never_repeated_on_stderr(machine: Machine, args: list[str]) -> None:
    done = machine.run(*args)
    assert done.returncode == 2
    line = one_error_line(done.stderr, naming="-- before the value")
    assert CANARY not in done.stderr + done.stdout and CANARY not in line
    assert machine.run("secrets", "get", "project:p1", "db.password").returncode == 3  # nothing was stored


def test_after_a_double_dash_the_same_value_is_stored(machine: Machine) -> None:
    machine.ok("secrets", "set", "project:p1", "db.password", "--", DASHED)
    revealed = machine.ok("secrets", "get", "project:p1", "db.password", "--reveal", "--yes")
    assert revealed.stdout.rstrip("\n") == DASHED
    unknown = machine.run("secrets", "set", "project:p1", "db.password", "--jsno", "x")  # a typo: still one line
    assert unknown.returncode == 2 and "--jsno" not in unknown.stderr


@pytest.mark.parametrize("key", ["ps0", "PS1", "ps2", "PS3"])
def test_prompt_variables_are_hooks_for_run_and_shell_exports(machine: Machine, key: str) -> None:
    """bash runs $(...) in every prompt string at each prompt: a key PS1 was code for an interactive shell."""
    machine.ok("secrets", "set", "project:p1", key, "$(touch pwned)")
    run = machine.run("secrets", "run", "project:p1", "--", "true")
    assert run.returncode == 2 and "--allow-env" in one_error_line(run.stderr)
    export = machine.run("secrets", "export", "project:p1", "--format", "shell", "--reveal", "--yes")
    assert export.returncode == 2 and "pwned" not in export.stdout + export.stderr
    assert not (machine.root / "pwned").exists()


def test_a_json_import_repeating_a_name_is_refused_and_imports_nothing(machine: Machine) -> None:
    (machine.root / "app.json").write_text(f'{{"API_KEY": "{CANARY}", "OTHER": "o", "API_KEY": "staging"}}')
    done = machine.run("secrets", "import", "--file", "app.json", "--scope", "project:p1", "--allow-plaintext")
    assert done.returncode == 2
    assert "repeats a name" in one_error_line(done.stderr) and CANARY not in done.stderr
    assert "API_KEY" not in machine.ok("secrets", "list", "project:p1").stdout  # all or nothing: nothing


def test_a_crlf_dotenv_file_stores_what_python_dotenv_reads(machine: Machine) -> None:
    text = 'SINGLE="one"\r\nMULTI="line1\r\nline2"\r\nPLAIN=value\r\n'
    env_file = machine.root / "app.env"
    env_file.write_bytes(text.encode())
    machine.ok("secrets", "import", "--file", "app.env", "--scope", "project:p1", "--allow-plaintext")
    exported = machine.ok("secrets", "export", "project:p1", "--format", "json", "--reveal", "--yes")
    assert json.loads(exported.stdout) == dotenv_values(env_file, interpolate=False) == {
        "MULTI": "line1\nline2", "PLAIN": "value", "SINGLE": "one"}


def test_a_passphrase_file_that_is_not_utf8_is_a_usage_error_not_a_crash(machine: Machine) -> None:
    machine.ok("secrets", "set", "project:p1", "db.password", CANARY)
    (machine.root / "pass").write_bytes(b"\xff\xfe correct horse battery")
    done = machine.run("secrets", "export", "project:p1", "--bundle", "--passphrase-file", "pass", "--out",
                       "bundle.json")
    assert done.returncode == 2, done.stderr
    assert "UTF-8" in one_error_line(done.stderr, naming="passphrase-file") and "unexpected" not in done.stderr
    assert not (machine.root / "bundle.json").exists()
