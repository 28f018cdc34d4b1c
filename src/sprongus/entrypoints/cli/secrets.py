"""The `sprongus secrets` group."""

from __future__ import annotations

import click

from sprongus.entrypoints.cli.secrets_basic import get_command, list_command, set_command, unset_command
from sprongus.entrypoints.cli.secrets_history import (
    history_command,
    purge_expired_command,
    restore_command,
    rollback_command,
)
from sprongus.entrypoints.cli.secrets_inject import inject_command
from sprongus.entrypoints.cli.secrets_ops import rotate_command, run_command
from sprongus.entrypoints.cli.secrets_transfer import export_command, import_command


@click.group("secrets")
def secrets_group() -> None:
    """Store, read (masked), reveal, import, export and rotate secrets, and keep their history."""


for command in (set_command, get_command, unset_command, list_command, import_command, export_command,
                rotate_command, run_command, inject_command, history_command, rollback_command, restore_command,
                purge_expired_command):
    secrets_group.add_command(command)
