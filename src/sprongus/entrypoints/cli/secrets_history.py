"""`sprongus secrets history|rollback|restore|purge-expired` (docs/history.md). `get --version`, `list --deleted`
and `unset --purge` live with their commands in secrets_basic.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sprongus.entrypoints.cli.output import emit_json, info, table
from sprongus.entrypoints.cli.params import KEY, SCOPE, VERSION
from sprongus.entrypoints.cli.state import CliState, LocalCommand, pass_state, remote_option

if TYPE_CHECKING:
    from sprongus.domain.history import History
    from sprongus.domain.scope import Scope

@remote_option
@click.command("history")
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts: scope, keyName, items, deletedAt.")
@pass_state
def history_command(state: CliState, scope: Scope, key: str, as_json: bool) -> None:
    """List a secret's kept versions, newest first: numbers, times and authors, never values."""
    history = state.api.history(scope, key)
    if as_json:
        emit_json({"scope": str(scope), "keyName": key, **history.to_dict()})
        return
    click.echo(table(["version", "created", "by", "current"], _rows(history)))
    if history.deleted_at is not None:
        deleted = history.to_dict()["deletedAt"]
        info(f"deleted at {deleted}; `sprongus secrets restore {scope} {key}` brings it back")


def _rows(history: History) -> list[list[str]]:
    rows = []
    for item in history.items:
        data = item.to_dict()
        rows.append([str(item.version), data["createdAt"] or "-", item.created_by or "-",
                     "yes" if item.current else ""])
    return rows


@remote_option
@click.command("rollback")
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY)
@click.option("--to", "to", type=VERSION, required=True, help="The kept version whose value to bring back.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: scope, keyName, version, "
              "fromVersion.")
@pass_state
def rollback_command(state: CliState, scope: Scope, key: str, to: int, as_json: bool) -> None:
    """Write a new version holding version N's value (nothing is rewritten: the history only grows)."""
    result = state.api.rollback(scope, key, to)
    version = result.view.version
    if as_json:
        emit_json({"scope": str(scope), "keyName": key, "version": version, "fromVersion": to})
        return
    info(f"rolled back {scope} {key} to the value of version {to} (now version {version})", err=False)


@remote_option
@click.command("restore")
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: scope, keyName, version, restored.")
@pass_state
def restore_command(state: CliState, scope: Scope, key: str, as_json: bool) -> None:
    """Bring back a deleted secret, with every version it kept."""
    view = state.api.restore(scope, key)
    if as_json:
        emit_json({"scope": str(scope), "keyName": key, "version": view.version, "restored": True})
        return
    info(f"restored {scope} {key} (version {view.version})", err=False)


@click.command("purge-expired", cls=LocalCommand)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: secrets, versions.")
@pass_state
def purge_expired_command(state: CliState, as_json: bool) -> None:
    """Destroy the secrets deleted longer ago than SPRONGUS_DELETE_RETENTION (default 30d), every version."""
    report = state.get_container().history_ops().purge_expired(state.principal)
    if as_json:
        emit_json({"secrets": report.secrets, "versions": report.versions})
        return
    plural = "" if report.secrets == 1 else "s"
    info(f"purged {report.secrets} deleted secret{plural} ({report.versions} version"
         f"{'' if report.versions == 1 else 's'})", err=False)
