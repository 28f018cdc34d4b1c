"""End-to-end fixtures: the CLI in-process (CliRunner on a temporary SQLite vault) and as real `sprongus` processes.

Both drive the `dev` profile on a temporary SPRONGUS_HOME. The real processes get a clean environment (no
SPRONGUS_*, no D-Bus session, HOME and the XDG dirs inside the test's directory), so on Linux no OS keychain is
reachable and the dev default falls back to the key file, exactly as on a headless machine.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sprongus.entrypoints.cli import cli
from sprongus.entrypoints.cli.state import CliState
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container, build_container

# A revocation made by another process (`sprongus tokens revoke`, another worker) reaches a server process within
# its token cache's TTL (SPRONGUS_TOKEN_CACHE_TTL, 1 s by default): tests that revoke elsewhere wait this long.
TOKEN_CACHE_BOUND = 1.2

SCOPE = "project:p1"
ERROR_SIGNS = ("Traceback", 'File "', "Error(", "raise ")
_SCRIPT = Path(sys.executable).parent / "sprongus"
SPRONGUS_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "sprongus.entrypoints.cli"]


def one_error_line(stderr: str, *, naming: str | None = None) -> str:
    """The single `error: ...` line of a failed command; fails on tracebacks or several error lines."""
    for sign in ERROR_SIGNS:
        assert sign not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    if naming is not None:
        assert naming in errors[0], errors[0]
    return errors[0]


def tamper_ciphertext(db_path: Path, key: str) -> None:
    """Flip one bit of a stored ciphertext, as bitrot or an attacker with the SQLite file would."""
    with sqlite3.connect(db_path) as db:
        (text,) = db.execute("SELECT ciphertext FROM secret_kv WHERE key_name = ?", (key,)).fetchone()
        raw = bytearray(base64.b64decode(text))
        raw[0] ^= 0x01
        db.execute("UPDATE secret_kv SET ciphertext = ? WHERE key_name = ?", (base64.b64encode(raw).decode(), key))
    db.close()


def add_trigger(db_path: Path, table: str, message: str) -> None:
    """Make every insert into `table` (only: it replaces an earlier one) fail inside SQLite with a constraint error."""
    with sqlite3.connect(db_path) as db:
        db.execute("DROP TRIGGER IF EXISTS e2e_fail")
        db.execute(f"CREATE TRIGGER e2e_fail BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END")
    db.close()


def stored_rows(db_path: Path) -> dict[str, tuple[str, str, str]]:
    """key_name -> (ciphertext, nonce, master_key_id) straight from the SQLite file."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT key_name, ciphertext, nonce, master_key_id FROM secret_kv").fetchall()
    db.close()
    return {key: (ct, nonce, mk) for key, ct, nonce, mk in rows}


class Vault:
    """The CLI in-process on one SQLite vault. Every call gets a fresh container, like a new process would."""

    def __init__(self, home: Path, extra: Mapping[str, str] | None = None) -> None:
        self.home = home
        self.extra = dict(extra or {})
        self.notices: list[str] = []
        self.runner = CliRunner()

    @property
    def db(self) -> Path:
        return self.home / "vault.db"

    @property
    def key_file(self) -> Path:
        return Path(self.extra.get("SPRONGUS_KEY_FILE", self.home / "master.key"))

    def settings(self) -> Settings:
        env = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(self.home), "SPRONGUS_KEY_PROVIDER": "file", **self.extra}
        return Settings.from_mapping(env)

    def container(self) -> Container:
        return build_container(self.settings(), notice=self.notices.append, local_owner=True)

    def __call__(self, *args: str, input: str | bytes | None = None, state: CliState | None = None) -> Result:
        # The container is built inside the command, as in a real process: a start-up refusal (a master key that
        # does not match the vault) is the command's error and exit code.
        state = state or CliState(settings=self.settings(), build=lambda _settings, _lean: self.container())
        result = self.runner.invoke(cli, list(args), obj=state, input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a bug in the test or the CLI: show it, do not hide it in a result
        return result

    def ok(self, *args: str, input: str | bytes | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def set(self, key: str, value: str, scope: str = SCOPE, *extra: str) -> Result:
        return self.ok("secrets", "set", scope, key, "-", *extra, input=value.encode() + b"\n")

    def reveal(self, key: str, scope: str = SCOPE) -> bytes:
        return self.ok("secrets", "get", scope, key, "--reveal", "--yes", "--no-newline").stdout_bytes

    def record(self, key: str, scope: str = SCOPE) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.ok("secrets", "get", scope, key, "--json").stdout)
        return data

    def names(self, scope: str = SCOPE) -> list[str]:
        doc = json.loads(self.ok("secrets", "list", scope, "--json").stdout)
        return [item["keyName"] for item in doc["items"]]

    def values(self, scope: str = SCOPE) -> dict[str, str]:
        return {key: self.reveal(key, scope).decode() for key in self.names(scope)}

    def status(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.ok("keys", "status", "--json").stdout)
        return data


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "home")


@pytest.fixture
def seeded(vault: Vault) -> Vault:
    """A vault with A, C, notion.a, notion.b (all "old") in SCOPE and D in project:p2."""
    for key in ("A", "C", "notion.a", "notion.b"):
        vault.set(key, "old")
    vault.set("D", "other project", "project:p2")
    return vault


def write_file(tmp_path: Path, name: str, content: object) -> str:
    """Write text (or JSON for anything else) to tmp_path/name; return the path as an argument."""
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.fixture
def make_vault(tmp_path: Path) -> Callable[..., Vault]:
    """Further vaults (other installations) under this test's directory: make_vault("other", **settings)."""

    def make(name: str, **extra: str) -> Vault:
        return Vault(tmp_path / name, extra)

    return make


@dataclass
class Proc:
    returncode: int
    stdout_bytes: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8")


class Machine:
    """Real `sprongus` processes on a clean environment; `home` is SPRONGUS_HOME unless a call names another."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        for name in ("user", "user/.config", "user/.local/share", "run"):
            (root / name).mkdir(mode=0o700, parents=True, exist_ok=True)

    def env(self, home: Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SPRONGUS_", "PYTHON_KEYRING", "DBUS_", "KEYRING_"))}
        env.update(HOME=str(self.root / "user"), XDG_CONFIG_HOME=str(self.root / "user/.config"),
                   XDG_DATA_HOME=str(self.root / "user/.local/share"), XDG_RUNTIME_DIR=str(self.root / "run"),
                   SPRONGUS_HOME=str(home or self.home))
        env.update(extra or {})
        return env

    def argv(self, *args: str) -> list[str]:
        return [*SPRONGUS_CMD, *args]

    def run(self, *args: str, input: str | bytes | None = None, home: Path | None = None,
            env: Mapping[str, str] | None = None) -> Proc:
        data = input.encode() if isinstance(input, str) else input
        done = subprocess.run(self.argv(*args), input=data, capture_output=True, env=self.env(home, env),
                              cwd=self.root, timeout=60, check=False,
                              stdin=subprocess.DEVNULL if data is None else None)
        return Proc(done.returncode, done.stdout, done.stderr.decode("utf-8", errors="replace"))

    def ok(self, *args: str, input: str | bytes | None = None, home: Path | None = None,
           env: Mapping[str, str] | None = None) -> Proc:
        proc = self.run(*args, input=input, home=home, env=env)
        assert proc.returncode == 0, (args, proc.returncode, proc.stdout_bytes, proc.stderr)
        return proc


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def run_on_terminal(machine: Machine, args: list[str], replies: list[tuple[bytes, bytes]],
                    env: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """Run sprongus with a pty as stdin/stdout/stderr, answering each (prompt, reply) in turn: (exit code, screen).
    `env`: the whole environment (default: the machine's)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(machine.argv(*args), stdin=slave, stdout=slave, stderr=slave,
                            env=dict(env) if env is not None else machine.env(), cwd=machine.root,
                            start_new_session=True)
    os.close(slave)
    screen, pending, seen, deadline = b"", list(replies), 0, time.monotonic() + 30
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"the terminal went quiet: {screen!r}"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            if pending and pending[0][0] in screen[seen:]:
                seen = len(screen)
                os.write(master, pending.pop(0)[1])
    finally:
        if proc.poll() is None and pending:
            proc.kill()
        proc.wait(timeout=30)
        os.close(master)
    assert not pending, screen
    return proc.returncode, screen
