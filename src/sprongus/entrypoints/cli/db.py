"""`sprongus db upgrade`: apply the schema migrations for the configured database."""

from __future__ import annotations

import click

from sprongus.entrypoints.cli.output import emit_json, info
from sprongus.entrypoints.cli.state import CliState, LocalGroup, pass_state


@click.group("db", cls=LocalGroup)
def db_group() -> None:
    """Database schema management (local: the configured database, never through the API)."""


@db_group.command("upgrade")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: applied (the migrations' names).")
@pass_state
def upgrade_command(state: CliState, as_json: bool) -> None:
    """Apply pending migrations (Postgres: the first run as a superuser, later ones as a maintenance login), then
    purge the secrets deleted longer ago than SPRONGUS_DELETE_RETENTION (as `secrets purge-expired` does)."""
    from sprongus.adapters.peewee.db import open_database, storage_errors
    from sprongus.adapters.peewee.migrate import pending, upgrade
    from sprongus.domain.errors import PermissionDenied, StorageError
    from sprongus.entrypoints.profiles import database_url

    url = database_url(state.get_settings())
    if url.startswith("memory:"):
        emit_json({"applied": []}) if as_json else info("in-memory storage: nothing to migrate", err=False)
        return
    db = open_database(url)
    try:
        with storage_errors():
            first = any(name.startswith("0001_") for name in pending(db))
        try:
            applied = upgrade(db)
        except StorageError as exc:
            if first and "permission denied" in str(exc):
                # Exit 4 like any refusal of this login's rights: the fix is another login, not another setting.
                raise PermissionDenied("database: the first `sprongus db upgrade` creates the sprongus roles and "
                                       "needs a superuser (or the database owner); later upgrades run as a "
                                       "maintenance login") from None
            raise
    finally:
        db.close()
    # The schema is current now: the use case runs on the container like every other local command. Only a purge
    # that destroyed something is reported (stderr), so the report of the migrations stays what it was.
    report = state.get_container().history_ops().purge_expired(state.principal)
    if report.secrets:
        info(f"purged {report.secrets} deleted secret{'' if report.secrets == 1 else 's'} ({report.versions} "
             f"version{'' if report.versions == 1 else 's'}) past SPRONGUS_DELETE_RETENTION")
    if as_json:
        emit_json({"applied": applied})
        return
    info(f"applied: {', '.join(applied)}" if applied else "schema is current", err=False)
