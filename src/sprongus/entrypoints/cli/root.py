from __future__ import annotations

import click

from sprongus import __version__
from sprongus.entrypoints.cli.db import db_group
from sprongus.entrypoints.cli.errors import GuardedGroup
from sprongus.entrypoints.cli.keys import keys_group
from sprongus.entrypoints.cli.secrets import secrets_group
from sprongus.entrypoints.cli.state import CliState


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sprongus")
def cli() -> None:
    """sprongus: an envelope-encrypted secrets store."""


for group in (secrets_group, keys_group, db_group):
    cli.add_command(group)


def main() -> None:
    cli(prog_name="sprongus", obj=CliState(skip_unused_drivers=True))
