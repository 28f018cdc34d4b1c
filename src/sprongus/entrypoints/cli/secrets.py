"""The `sprongus secrets` group."""

from __future__ import annotations

import click

from sprongus.entrypoints.cli.secrets_basic import get_command, list_command, set_command, unset_command
from sprongus.entrypoints.cli.secrets_ops import rotate_command, run_command
from sprongus.entrypoints.cli.secrets_transfer import export_command, import_command
from sprongus.entrypoints.cli.state import CliState


@click.group("secrets")
def secrets_group() -> None:
    """Store, read (masked), reveal, import, export and rotate secrets."""


def _use_remote(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliState).remote = True


for command in (set_command, get_command, unset_command, list_command, import_command, export_command,
                rotate_command, run_command):
    command.params.append(click.Option(["--remote"], is_flag=True, expose_value=False, callback=_use_remote,
                                       is_eager=True, help="Through the REST API at SPRONGUS_API_URL (token: "
                                       "SPRONGUS_TOKEN or `sprongus login`)."))
    secrets_group.add_command(command)
