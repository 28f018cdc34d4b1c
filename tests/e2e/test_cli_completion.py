"""`sprongus completion bash|zsh|fish` and what the shells complete, as real processes and in real shells.

The completion protocol is Click's: the shell runs `sprongus` with `_SPRONGUS_COMPLETE=<shell>_complete` and the
words so far (COMP_WORDS, COMP_CWORD), and reads back one candidate per line. Scopes and key names come from a
read-only look at the local vault: it must reveal nothing, write nothing, and create no vault or key.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.e2e.conftest import SPRONGUS_CMD, Machine
from tests.harness import CANARY

BIN = Path(SPRONGUS_CMD[0]).parent
needs_script = pytest.mark.skipif(Path(SPRONGUS_CMD[0]).name != "sprongus",
                                  reason="the shells call `sprongus` by name: needs the installed console script")


def _shell_env(machine: Machine, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = machine.env(extra=extra)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _complete(machine: Machine, shell: str, words: str, cword: int | str,
              extra: Mapping[str, str] | None = None) -> list[str]:
    """One completion request as the shell makes it; the candidates' values."""
    env = machine.env(extra={"COMP_WORDS": words, "COMP_CWORD": str(cword), "_SPRONGUS_COMPLETE": f"{shell}_complete",
                             **(extra or {})})
    done = subprocess.run(SPRONGUS_CMD, env=env, capture_output=True, text=True, timeout=60, check=False,
                          cwd=machine.root)
    assert (done.returncode, done.stderr) == (0, ""), done
    if shell == "zsh":  # type, value, help: three lines per candidate
        lines = done.stdout.splitlines()
        return [lines[i + 1] for i in range(0, len(lines) - 2, 3)]
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line]


def _bash(machine: Machine, script: str, extra: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=_shell_env(machine, extra),
                          capture_output=True, text=True, timeout=60, check=False, cwd=machine.root)
    assert done.returncode == 0, done
    return done.stdout


def _audit_rows(db: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT action, scope, key_name FROM audit_event ORDER BY seq").fetchall()
    conn.close()
    return rows


@pytest.fixture
def seeded(machine: Machine) -> Machine:
    items = [{"scope": "project:acme", "key": "notion.api_token", "value": CANARY},
             {"scope": "project:acme", "key": "notion.workspace", "value": f"{CANARY}-2"},
             {"scope": "project:web", "key": "OPENAI_API_KEY", "value": f"{CANARY}-3"},
             {"scope": "system", "key": "smtp.password", "value": f"{CANARY}-4"}]
    (machine.root / "items.json").write_text(json.dumps({"items": items}))
    machine.ok("secrets", "import", "--file", "items.json", "--allow-plaintext")
    return machine


# the scripts --------------------------------------------------------------------------------------------------


@needs_script
def test_the_bash_script_loads_in_bash_and_registers_the_completion(machine: Machine) -> None:
    out = _bash(machine, 'eval "$(sprongus completion bash)"; complete -p sprongus')

    assert out.strip() == "complete -o nosort -F _sprongus_completion sprongus"


def test_the_fish_script_is_clicks_own(machine: Machine) -> None:
    script = machine.ok("completion", "fish").stdout
    source = machine.ok(env={"_SPRONGUS_COMPLETE": "fish_source"}).stdout

    assert script == source
    assert "_SPRONGUS_COMPLETE=fish_complete" in script


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_bash_and_zsh_scripts_speak_clicks_protocol(machine: Machine, shell: str) -> None:
    script = machine.ok("completion", shell).stdout

    assert f"_SPRONGUS_COMPLETE={shell}_complete" in script
    assert "_sprongus_completion" in script


def test_an_unknown_shell_is_a_usage_error(machine: Machine) -> None:
    proc = machine.run("completion", "tcsh")

    assert proc.returncode == 2
    assert proc.stdout == ""


def test_help_shows_the_install_lines(machine: Machine) -> None:
    out = machine.ok("completion", "--help").stdout

    assert 'eval "$(sprongus completion bash)"' in out
    assert "sprongus completion fish > ~/.config/fish/completions/sprongus.fish" in out


# the protocol: commands, subcommands, options ---------------------------------------------------------------


def test_bash_completes_a_command_and_a_subcommand(machine: Machine) -> None:
    assert _complete(machine, "bash", "sprongus sec", 1) == ["secrets"]
    assert _complete(machine, "bash", "sprongus secrets g", 2) == ["get"]
    assert "completion" in _complete(machine, "bash", "sprongus ", 1)
    assert _complete(machine, "bash", "sprongus completion ", 2) == ["bash", "zsh", "fish"]


def test_zsh_and_fish_complete_a_subcommand(machine: Machine) -> None:
    assert _complete(machine, "zsh", "sprongus secrets g", 2) == ["get"]
    assert [c.split("\t")[0] for c in _complete(machine, "fish", "sprongus secrets g", "g")] == ["get"]


# scopes and key names from the local vault --------------------------------------------------------------------


def test_scopes_complete_from_the_kinds_and_the_vault(seeded: Machine) -> None:
    assert _complete(seeded, "bash", "sprongus secrets get ", 3) == [
        "user:", "project:", "system", "project:acme", "project:web"]
    assert _complete(seeded, "bash", "sprongus secrets get proj", 3) == ["project:", "project:acme", "project:web"]
    assert _complete(seeded, "bash", "sprongus secrets import --scope project:w", 4) == ["project:web"]


def test_key_names_complete_from_the_scope_on_the_line_and_nothing_is_revealed(seeded: Machine) -> None:
    db = seeded.home / "vault.db"
    audit_before, files_before = _audit_rows(db), sorted(os.listdir(seeded.home))

    keys = _complete(seeded, "bash", "sprongus secrets get project:acme no", 4)
    system_keys = _complete(seeded, "bash", "sprongus secrets set system ", 4)
    prefixes = _complete(seeded, "bash", "sprongus secrets list project:acme --prefix n", 5)
    values = _complete(seeded, "bash", "sprongus secrets set project:acme notion.api_token ", 5)

    assert keys == ["notion.api_token", "notion.workspace"]
    assert system_keys == ["smtp.password"]
    assert prefixes == ["notion.", "notion.api_token", "notion.workspace"]
    assert values == []  # a VALUE is never completed
    assert CANARY not in str([keys, system_keys, prefixes, values])
    assert _audit_rows(db) == audit_before  # no reveal, and no other audit row either
    assert sorted(os.listdir(seeded.home)) == files_before  # no WAL or SHM file left behind


def test_remote_mode_completes_no_names_from_the_local_vault(seeded: Machine) -> None:
    assert _complete(seeded, "bash", "sprongus secrets get proj", 3, {"SPRONGUS_REMOTE": "1"}) == ["project:"]
    assert _complete(seeded, "bash", "sprongus secrets get --remote proj", 4) == ["project:"]
    assert _complete(seeded, "bash", "sprongus secrets get --remote project:acme n", 5) == []


def test_completion_without_a_vault_creates_nothing(machine: Machine) -> None:
    assert _complete(machine, "bash", "sprongus secrets get ", 3) == ["user:", "project:", "system"]
    assert _complete(machine, "bash", "sprongus secrets get project:acme ", 4) == []

    assert not machine.home.exists()
    assert not list((machine.root / "user").rglob("*.key"))
    assert not list((machine.root / "user").rglob("vault.db"))


@pytest.mark.parametrize("damage", ["garbage", "shared", "bad setting"])
def test_completion_skips_a_vault_it_should_not_read_silently(seeded: Machine, damage: str) -> None:
    db, extra = seeded.home / "vault.db", {}
    if damage == "garbage":
        db.write_bytes(b"not a database" * 100)
    elif damage == "shared":
        db.chmod(0o644)
    else:
        extra = {"SPRONGUS_ENV": "staging"}

    assert _complete(seeded, "bash", "sprongus secrets get proj", 3, extra) == ["project:"]


# the scripts in their shells ----------------------------------------------------------------------------------


@needs_script
def test_the_bash_script_handles_colons_in_scopes(seeded: Machine) -> None:
    """bash splits `project:acme` at the colon (COMP_WORDBREAKS): the script re-reads the line and hands bash only
    what follows the last colon, as bash replaces only that."""
    script = """eval "$(sprongus completion bash)"
    try() { COMP_LINE="$1"; COMP_POINT=${#1}; COMPREPLY=(); _sprongus_completion sprongus 2>/dev/null
            local IFS='|'; echo "${COMPREPLY[*]}"; }
    try "sprongus secrets get proj"
    try "sprongus secrets get project:"
    try "sprongus secrets get project:a"
    try "sprongus secrets get project:acme notion.a"
    """
    assert _bash(seeded, script).splitlines() == [
        "project:|project:acme|project:web", "acme|web", "acme", "notion.api_token"]


@needs_script
def test_bash_completes_scopes_at_a_real_prompt(seeded: Machine) -> None:
    """Readline itself: `us<TAB>` gives `user:` with no space after it; `proj<TAB>a<TAB>` gives `project:acme `."""
    master, slave = pty.openpty()
    env = {**_shell_env(seeded), "PS1": "$ ", "TERM": "dumb"}
    proc = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=seeded.root, start_new_session=True)
    os.close(slave)
    screen = b""

    def until(text: bytes, start: int = 0) -> None:
        nonlocal screen
        deadline = time.monotonic() + 30
        while text not in screen[start:]:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"waited for {text!r}: {screen!r}"
            screen += os.read(master, 4096)

    def line_after(*keys: bytes) -> None:
        start = len(screen)
        for key in keys:
            os.write(master, key)
            time.sleep(0.5)  # the completion runs sprongus: let it answer before the next key
        # Readline redraws as it goes; the line itself is read back by turning it into an `echo`.
        os.write(master, b"\x01echo LINE=\x05END\n")
        until(b"\nLINE=", start)  # the echo's output, at the start of a line (its echo at the prompt is after `$ `)
        until(b"END\r\n$ ", start)

    try:
        os.write(master, b'eval "$(sprongus completion bash)"; echo lo""aded\n')
        until(b"loaded")
        line_after(b"sprongus secrets get us\t", b"alice k")
        line_after(b"sprongus secrets get proj\t", b"a\t")
        os.write(master, b"exit\n")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        os.close(master)
    assert b"\nLINE=sprongus secrets get user:alice kEND\r\n" in screen, screen
    assert b"\nLINE=sprongus secrets get project:acme END\r\n" in screen, screen


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")
@needs_script
def test_the_zsh_script_loads_in_zsh(seeded: Machine) -> None:
    done = subprocess.run(["zsh", "-f", "-c", 'autoload -Uz compinit && compinit -u -D; '
                           'eval "$(sprongus completion zsh)"; print -r -- $_comps[sprongus]'],
                          env=_shell_env(seeded), capture_output=True, text=True, timeout=60, check=False)

    assert (done.returncode, done.stdout.strip()) == (0, "_sprongus_completion"), done
    assert _complete(seeded, "zsh", "sprongus secrets get project:acme ", 4) == ["notion.api_token",
                                                                                "notion.workspace"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (apt-get install fish)")
@needs_script
def test_the_fish_script_completes_in_fish(seeded: Machine) -> None:
    lines = ('"sprongus sec"', '"sprongus secrets get project:a"', '"sprongus secrets get project:acme notion.a"')
    script = f"sprongus completion fish | source; for line in {' '.join(lines)}; complete -C\"$line\"; end"
    done = subprocess.run(["fish", "--no-config", "-c", script], env=_shell_env(seeded), capture_output=True,
                          text=True, timeout=60, check=False)

    assert done.returncode == 0, done
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["secrets", "project:acme",
                                                                         "notion.api_token"]


# start-up -----------------------------------------------------------------------------------------------------

_PROBE = """
import json, sys
from sprongus.entrypoints.cli.root import main
sys.argv = ["sprongus", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["secrets", "list", "project:acme"]])
def test_other_commands_load_none_of_the_completion_machinery(seeded: Machine, args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], env=seeded.env(), capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))

    assert "click.shell_completion" not in loaded
    assert "difflib" not in loaded  # the scope guesser's, on the error path only
