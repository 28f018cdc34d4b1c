"""The operator's commands (keys, tokens, trusts, migrations) act on this machine's vault only. They say so in their
help, and refuse `--remote` and SPRONGUS_REMOTE=1 by name (exit 2) before touching anything: an operator who meant
the remote vault must not mint a token or rotate a key here without a word."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from sprongus.entrypoints.cli import cli
from sprongus.entrypoints.cli.state import LOCAL_NOTE, LocalCommand
from tests.e2e.conftest import Machine, Vault, one_error_line

TRUST = ["--issuer", "https://sso.example.com", "--audience", "a", "--scope", "secrets:read"]
# Each local-only command with arguments it would accept: the refusal must come from the setting, not the parser.
LOCAL = {
    "keys status": [], "keys rotate-master": [], "keys rotate-hmac": [], "keys verify": [],
    "tokens create": ["--subject", "alice", "--scope", "secrets:read"], "tokens list": [], "tokens revoke": ["tok_x"],
    "auth trust add": ["t", *TRUST], "auth trust list": [], "auth trust remove": ["t"],
    "db upgrade": [],
    "audit list": [], "audit export": [], "audit verify": [], "secrets purge-expired": [],
}


def _walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}".strip())


def test_exactly_the_operator_commands_are_local_only() -> None:
    local = {path for path, command in _walk(cli, "") if isinstance(command, LocalCommand)}
    assert local == set(LOCAL)  # auth status, login, logout and every `secrets` command work through the API


@pytest.mark.parametrize("path", sorted(LOCAL))
def test_sprongus_remote_is_refused_by_name_and_nothing_is_touched(tmp_path: Path, path: str) -> None:
    vault = Vault(tmp_path / "home", {"SPRONGUS_REMOTE": "1"})

    from_env = vault(*path.split(), *LOCAL[path])
    from_flag = vault(*path.split(), *LOCAL[path], "--remote")
    helped = vault(*path.split(), "--help")

    assert (from_env.exit_code, from_env.stdout) == (2, "")
    assert one_error_line(from_env.stderr) == (
        f"error: SPRONGUS_REMOTE: sprongus {path} is local only (it acts on this machine's vault, never through the "
        "API); unset SPRONGUS_REMOTE to run it")
    assert (from_flag.exit_code, from_flag.stdout) == (2, "")
    assert one_error_line(from_flag.stderr) == (
        f"error: remote: sprongus {path} is local only: it acts on this machine's vault, never through the API")
    assert not vault.db.exists()  # refused before the vault was opened
    assert helped.exit_code == 0 and " ".join(LOCAL_NOTE.split()) in " ".join(helped.stdout.split())
    assert "--remote" not in helped.stdout


def test_the_groups_say_local_in_the_command_list() -> None:
    listing = Vault(Path("/nonexistent"))("--help").stdout
    for group in ("keys", "tokens", "db"):
        line = next(line for line in listing.splitlines() if line.strip().startswith(group + " "))
        assert "(local:" in line, line


def test_a_real_process_with_sprongus_remote_set_mints_no_token(machine: Machine) -> None:
    refused = machine.run("tokens", "create", "--subject", "alice", "--scope", "secrets:read",
                          env={"SPRONGUS_REMOTE": "1"})
    switched_off = machine.run("tokens", "list", "--json", env={"SPRONGUS_REMOTE": "0"})

    assert (refused.returncode, refused.stdout) == (2, "")
    one_error_line(refused.stderr, naming="sprongus tokens create is local only")
    assert "spr_" not in refused.stderr
    assert (switched_off.returncode, switched_off.stdout) == (0, "[]\n"), switched_off.stderr
