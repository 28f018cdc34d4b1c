"""The `sprongus secrets` group."""

from __future__ import annotations

import click

from sprongus.entrypoints.cli.lazy import LazyGroup, Loader
from sprongus.entrypoints.cli.secrets_basic import get_command, list_command, set_command, unset_command


# Loaded when named (cli/lazy.py): the everyday commands above need neither these modules nor their imports.
def _history() -> list[click.Command]:
    from sprongus.entrypoints.cli.secrets_history import (
        history_command,
        purge_expired_command,
        restore_command,
        rollback_command,
    )

    return [history_command, rollback_command, restore_command, purge_expired_command]


def _transfer() -> list[click.Command]:
    from sprongus.entrypoints.cli.secrets_transfer import export_command, import_command

    return [import_command, export_command]


def _ops() -> list[click.Command]:
    from sprongus.entrypoints.cli.secrets_ops import rotate_command, run_command

    return [rotate_command, run_command]


def _inject() -> list[click.Command]:
    from sprongus.entrypoints.cli.secrets_inject import inject_command

    return [inject_command]


# What `secrets --help` and completion say of each lazy command without loading it: the first paragraph of its own
# help (tests/unit/test_cli_lazy_help.py holds them to it).
SUMMARIES = {
    "export": "Export metadata (default, never values), an encrypted bundle, or with --reveal the plaintext values.",
    "history": "List a secret's kept versions, newest first: numbers, times and authors, never values.",
    "import": "Import secrets from a dotenv, JSON or bundle file (all or nothing).",
    "inject": "Render a template: each {{ sprongus://TYPE/ID/KEY }} becomes that secret's value (audited as a "
              "reveal).",
    "purge-expired": "Destroy the secrets deleted longer ago than SPRONGUS_DELETE_RETENTION (default 30d), every "
                     "version.",
    "restore": "Bring back a deleted secret, with every version it kept.",
    "rollback": "Write a new version holding version N's value (nothing is rewritten: the history only grows).",
    "rotate": "Re-encrypt with a fresh data key (version+1): one key, a prefix, or the whole scope.",
    "run": "Run COMMAND with the scope's secrets as environment variables (each audited as a reveal).",
}


LAZY: dict[str, Loader] = {"history": _history, "rollback": _history, "restore": _history, "purge-expired": _history,
                           "import": _transfer, "export": _transfer, "rotate": _ops, "run": _ops, "inject": _inject}


@click.group("secrets", cls=LazyGroup, lazy=LAZY, summaries=SUMMARIES)
def secrets_group() -> None:
    """Store, read (masked), reveal, import, export and rotate secrets, and keep their history."""


for command in (set_command, get_command, unset_command, list_command):
    secrets_group.add_command(command)
