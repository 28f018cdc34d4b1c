"""The `sprongus secrets` group."""

from __future__ import annotations

import click

from sprongus.entrypoints.cli.lazy import LazyGroup
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


@click.group("secrets", cls=LazyGroup, lazy={"history": _history, "rollback": _history, "restore": _history,
                                             "purge-expired": _history, "import": _transfer, "export": _transfer,
                                             "rotate": _ops, "run": _ops, "inject": _inject})
def secrets_group() -> None:
    """Store, read (masked), reveal, import, export and rotate secrets, and keep their history."""


for command in (set_command, get_command, unset_command, list_command):
    secrets_group.add_command(command)
