from __future__ import annotations

import click

from sprongus import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sprongus")
def cli() -> None:
    """sprongus: an envelope-encrypted secrets store."""


def main() -> None:
    cli(prog_name="sprongus")
