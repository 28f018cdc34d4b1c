"""The CLI side of the history and audit attacks: out-of-range audit times and odd version numbers are usage errors
(exit 2, one line, no traceback), and no output nor the SQLite file holds the canary after set, rollback, delete."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Machine, one_error_line
from tests.harness import CANARY

SCOPE, KEY = "project:acme", "db.password"


@pytest.mark.parametrize("args", [
    ("audit", "list", "--since", "999999999d"), ("audit", "list", "--since", "0001-01-01T00:00:00+01:00"),
    ("audit", "list", "--until", "9999-12-31T23:59:59-01:00"), ("audit", "export", "--since", "99999999d"),
    ("secrets", "rollback", SCOPE, KEY, "--to", "\u0661"), ("secrets", "rollback", SCOPE, KEY, "--to", "0"),
    ("secrets", "get", SCOPE, KEY, "--version", " 1"), ("secrets", "get", SCOPE, KEY, "--version", "2147483648"),
])
def test_out_of_range_input_is_a_usage_error_not_a_crash(machine: Machine, args: tuple[str, ...]) -> None:
    machine.ok("secrets", "set", SCOPE, KEY, "-", input=CANARY)
    proc = machine.run(*args)
    assert proc.returncode == 2, proc
    one_error_line(proc.stderr)
    assert CANARY not in proc.stdout + proc.stderr


def test_no_output_and_not_the_vault_file_holds_the_canary(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, KEY, "-", input=CANARY)
    machine.ok("secrets", "set", SCOPE, KEY, "-", input="second")
    outputs = [machine.ok("secrets", "rollback", SCOPE, KEY, "--to", "1", "--json"),
               machine.ok("secrets", "unset", SCOPE, KEY),
               machine.ok("secrets", "history", SCOPE, KEY, "--json"),
               machine.ok("secrets", "list", SCOPE, "--deleted", "--json"),
               machine.ok("audit", "list", "--json"), machine.ok("audit", "export"), machine.ok("audit", "verify")]
    for proc in outputs:
        assert CANARY not in proc.stdout + proc.stderr
    for path in machine.home.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
