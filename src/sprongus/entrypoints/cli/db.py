"""`sprongus db upgrade`: apply the schema migrations for the configured database."""

from __future__ import annotations

import click

from sprongus.entrypoints.cli.state import CliState, pass_state


@click.group("db")
def db_group() -> None:
    """Database schema management."""


@db_group.command("upgrade")
@pass_state
def upgrade_command(state: CliState) -> None:
    """Apply pending migrations (Postgres: the first run as a superuser, later ones as a maintenance login)."""
    from sprongus.adapters.peewee.db import open_database
    from sprongus.adapters.peewee.migrate import upgrade
    from sprongus.entrypoints.profiles import database_url

    url = database_url(state.get_settings())
    if url.startswith("memory:"):
        click.echo("in-memory storage: nothing to migrate")
        return
    db = open_database(url)
    try:
        applied = upgrade(db)
    finally:
        db.close()
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is current")
