"""`sprongus -q` and colour, as real processes: -q drops confirmations, notices and progress but never an error, a
warning or a command's output proper (a value, a table, a token); tables are coloured only on a terminal and never
with NO_COLOR (no-color.org), so a pipe or a file never holds an escape code."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.e2e.conftest import SCOPE, Machine, one_error_line, run_on_terminal, tamper_ciphertext, write_file

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty and no OS keychain")
ESC = "\x1b["
ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def test_quiet_commands_print_nothing_on_success(machine: Machine) -> None:
    first = machine.run("-q", "secrets", "set", SCOPE, "a", "-", input="v\n")
    assert (first.returncode, first.stdout) == (0, ""), first.stderr
    assert first.stderr.startswith("warning: ")  # the new key file's back-up warning: about safety, so it stays
    dotenv = write_file(machine.root, "app.env", "B=1\nC=2\n")
    token = json.loads(machine.ok("tokens", "create", "--subject", "bob", "--scope", "secrets:read",
                                  "--json").stdout)["id"]
    silent = [
        ("--quiet", "secrets", "set", SCOPE, "a", "-"), ("-q", "secrets", "rotate", SCOPE),
        ("-q", "secrets", "rotate", SCOPE, "a"), ("-q", "secrets", "list", "project:empty"),
        ("-q", "secrets", "import", "--file", dotenv, "--scope", SCOPE, "--allow-plaintext"),
        ("-q", "secrets", "export", SCOPE, "--out", "meta.json"), ("-q", "secrets", "unset", SCOPE, "C"),
        ("-q", "keys", "rotate-master"), ("-q", "keys", "rotate-hmac"), ("-q", "keys", "verify"),
        ("-q", "tokens", "revoke", token), ("-q", "db", "upgrade"),
        ("-q", "auth", "trust", "add", "t", "--issuer", "https://sso.example.com", "--audience", "a", "--scope",
         "secrets:read"), ("-q", "auth", "trust", "remove", "t"),
    ]
    for args in silent:
        proc = machine.run(*args, input="w\n")
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), args
    assert json.loads((machine.root / "meta.json").read_text())["items"]  # quiet, but the work was done


def test_quiet_keeps_the_output_proper_errors_and_warnings(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, "a", "-", input="v\n")
    dotenv = write_file(machine.root, "app.env", "B=1\n")

    token = machine.run("-q", "tokens", "create", "--subject", "alice", "--scope", "secrets:read")
    revealed = machine.run("-q", "secrets", "get", SCOPE, "a", "--reveal", "--yes")
    dry_run = machine.run("-q", "secrets", "import", "--file", dotenv, "--scope", SCOPE, "--allow-plaintext",
                          "--dry-run")
    printed = machine.run("-q", "secrets", "set", SCOPE, "a", "--print-json", input="w\n")
    missing = machine.run("-q", "secrets", "get", SCOPE, "missing")
    on_argv = machine.run("-q", "secrets", "set", SCOPE, "b", "on-the-command-line")

    assert token.stdout.startswith("spr_") and token.stderr == ""  # the token, without `created tok_...`
    assert (revealed.stdout, revealed.stderr) == ("v\n", "")
    assert (dry_run.stdout, dry_run.stderr) == (f"+ {SCOPE} B\n", "")  # the plan is the output; the summary goes
    assert json.loads(printed.stdout)["version"] == 2 and printed.stderr == ""
    assert (missing.returncode, missing.stdout) == (3, "")
    one_error_line(missing.stderr, naming="not found")
    assert on_argv.returncode == 0 and "warning: a value given on the command line" in on_argv.stderr


def test_quiet_verify_still_reports_problems(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, "a", "-", input="v\n")
    tamper_ciphertext(machine.home / "vault.db", "a")

    proc = machine.run("-q", "keys", "verify")

    assert proc.returncode == 7
    assert f"{SCOPE} a:" in proc.stdout and "checked 1 secret: PROBLEMS FOUND" in proc.stderr


def _tokens(machine: Machine) -> None:
    """Two tokens, one revoked: a table with a state worth colouring."""
    machine.ok("tokens", "create", "--subject", "alice", "--scope", "secrets:read")
    revoked = json.loads(machine.ok("tokens", "create", "--subject", "bob", "--scope", "secrets:read",
                                    "--json").stdout)["id"]
    machine.ok("tokens", "revoke", revoked)


def test_tables_on_a_terminal_are_coloured_and_align_as_on_a_pipe(machine: Machine) -> None:
    _tokens(machine)
    piped = machine.ok("tokens", "list")

    code, screen = run_on_terminal(machine, ["tokens", "list"], [])

    assert code == 0, screen
    assert ESC not in piped.stdout + piped.stderr
    assert b"\x1b[1mID\x1b[0m" in screen  # the header, bold
    assert b"\x1b[31mrevoked\x1b[0m" in screen and b"active" in screen
    assert ANSI.sub(b"", screen).replace(b"\r\n", b"\n").decode() == piped.stdout  # escape codes take no room


@pytest.mark.parametrize("args", [["tokens", "list"], ["secrets", "list", SCOPE], ["keys", "status"]])
def test_no_color_turns_every_escape_code_off_on_a_terminal(machine: Machine, args: list[str]) -> None:
    machine.ok("secrets", "set", SCOPE, "a", "-", input="v\n")
    _tokens(machine)

    coloured = run_on_terminal(machine, args, [])
    plain = run_on_terminal(machine, args, [], env=machine.env(extra={"NO_COLOR": "1"}))
    empty = run_on_terminal(machine, args, [], env=machine.env(extra={"NO_COLOR": ""}))

    assert coloured[0] == plain[0] == empty[0] == 0
    assert ESC.encode() in coloured[1]
    assert ESC.encode() not in plain[1]
    assert empty[1] == coloured[1]  # no-color.org: an empty NO_COLOR is as good as none


def test_quiet_shows_no_progress_bar_on_a_terminal(machine: Machine) -> None:
    for n in range(3):
        machine.ok("secrets", "set", SCOPE, f"k{n}", "-", input="v\n")

    loud = run_on_terminal(machine, ["secrets", "rotate", SCOPE], [])
    quiet = run_on_terminal(machine, ["-q", "secrets", "rotate", SCOPE], [])

    assert loud[0] == quiet[0] == 0
    assert b"rotating" in loud[1] and b"rotated 3 secrets" in loud[1]
    assert quiet[1] == b""
