"""The CANARY value never shows up outside an explicit reveal: not in any output, argv, or the vault's files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain and /proc")


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Machine:
    """A home whose secrets all contain CANARY, plus the files the commands below read."""
    machine = Machine(tmp_path_factory.mktemp("leaks"))
    machine.ok("secrets", "set", SCOPE, "leak.stdin", "-", "--meta", "provider=canary", input=CANARY + "\n")
    files = {"value.txt": CANARY + "\n", "value.json": json.dumps({"token": CANARY}),
             "import.env": f"LEAK_ENV={CANARY}\nexport LEAK_QUOTED='{CANARY}'\n",
             "bad-item.json": json.dumps({"items": [{"key": "ok", "value": CANARY},
                                                    {"key": "9bad", "value": CANARY}]}),
             "bad.json": '{"token": "' + CANARY, "big.txt": CANARY * 2000}
    for name, text in files.items():
        (machine.root / name).write_text(text)
    return machine


# (arguments, stdin, expected exit code); file names are relative to the machine's root (the processes' cwd).
COMMANDS: list[tuple[list[str], str | None, int]] = [
    (["secrets", "set", SCOPE, "leak.argv", CANARY], None, 0),
    (["secrets", "set", SCOPE, "leak.file", "--file", "value.txt"], None, 0),
    (["secrets", "set", SCOPE, "leak.json", "--json", "--file", "value.json"], None, 0),
    (["secrets", "set", SCOPE, "leak.piped"], CANARY, 0),
    (["secrets", "get", SCOPE, "leak.stdin"], None, 0),
    (["secrets", "get", SCOPE, "leak.stdin", "--json"], None, 0),
    (["secrets", "list", SCOPE, "--meta"], None, 0),
    (["secrets", "list", SCOPE, "--json", "--meta"], None, 0),
    (["secrets", "export", SCOPE], None, 0),
    (["secrets", "export", SCOPE, "--bundle"], None, 0),
    (["secrets", "import", "--file", "import.env", "--scope", SCOPE, "--allow-plaintext", "--dry-run"], None, 0),
    (["secrets", "import", "--file", "import.env", "--scope", SCOPE, "--allow-plaintext"], None, 0),
    (["secrets", "rotate", SCOPE], None, 0),
    (["keys", "status"], None, 0),
    (["keys", "status", "--json"], None, 0),
    (["keys", "rotate-master"], None, 0),
    (["secrets", "run", SCOPE, "--", sys.executable, "-c", "pass"], None, 0),
    # errors
    (["secrets", "set", SCOPE, "9bad", CANARY], None, 2),
    (["secrets", "set", SCOPE, "9bad", "-"], CANARY, 2),
    (["secrets", "set", SCOPE, "leak.badjson", "--json", "--file", "bad.json"], None, 2),
    (["secrets", "set", SCOPE, "leak.big", "--file", "big.txt"], None, 2),
    (["secrets", "set", SCOPE, "leak.meta", "-", "--meta", "Bad=x"], CANARY, 2),
    (["secrets", "import", "--file", "import.env", "--scope", SCOPE], None, 2),
    (["secrets", "import", "--file", "bad-item.json", "--allow-plaintext", "--scope", SCOPE], None, 2),
    (["secrets", "get", SCOPE, "leak.stdin", "--reveal"], None, 4),
]


@pytest.mark.parametrize(("args", "stdin", "code"), COMMANDS, ids=[" ".join(c[0][:4]) for c in COMMANDS])
def test_no_command_but_a_reveal_prints_the_value(leaky: Machine, args: list[str], stdin: str | None,
                                                 code: int) -> None:
    proc = leaky.run(*args, input=stdin)

    assert proc.returncode == code, proc.stderr
    assert CANARY not in proc.stdout
    assert CANARY not in proc.stderr


def test_the_values_were_really_there(leaky: Machine) -> None:
    """Guards the test above: the CANARY was stored, and a reveal does print it."""
    proc = leaky.ok("secrets", "get", SCOPE, "leak.stdin", "--reveal", "--yes")

    assert proc.stdout == CANARY + "\n"


def test_the_vault_files_never_hold_the_plaintext(leaky: Machine) -> None:
    files = [p for p in leaky.home.rglob("*") if p.is_file()]

    assert {p.name for p in files} >= {"vault.db", "master.key"}
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]  # NUL-terminated


def _reading_stdin(pid: int) -> bool:
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def test_set_dash_keeps_the_value_out_of_the_process_arguments(machine: Machine) -> None:
    proc = subprocess.Popen(machine.argv("secrets", "set", SCOPE, "k", "-"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=machine.env(), cwd=machine.root)
    try:
        deadline = time.monotonic() + 3
        while not _reading_stdin(proc.pid) and time.monotonic() < deadline:  # best effort: wchan may be hidden
            time.sleep(0.02)
        argv = _cmdline(proc.pid)
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        out, err = proc.communicate(input=(CANARY + "\n").encode(), timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert argv[-5:] == ["secrets", "set", SCOPE, "k", "-"], argv
    assert not any(CANARY in arg for arg in argv)
    assert CANARY.encode() not in environ
    assert proc.returncode == 0, err
    assert CANARY.encode() not in out + err
    assert machine.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes").stdout == CANARY + "\n"


def test_a_debug_log_level_opens_sprongus_loggers_only(leaky: Machine) -> None:
    """The libraries' debug lines carry what the redaction does not know: botocore's request headers hold an AWS
    session token, peewee's every statement with its parameters. SPRONGUS_LOG_LEVEL=debug leaves them at WARNING."""
    for command in (("secrets", "get", SCOPE, "leak.stdin"), ("secrets", "list", SCOPE)):
        proc = leaky.ok(*command, env={"SPRONGUS_LOG_LEVEL": "debug"})
        assert "peewee" not in proc.stderr and "SELECT" not in proc.stderr, proc.stderr[:500]
        assert CANARY not in proc.stdout + proc.stderr
