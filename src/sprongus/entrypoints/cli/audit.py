"""`sprongus audit list|export|verify`: the local operator reads, exports and checks this vault's audit trail."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from sprongus.entrypoints.cli.errors import EXIT_INTEGRITY
from sprongus.entrypoints.cli.output import emit_json, info, table
from sprongus.entrypoints.cli.state import CliState, LocalGroup, pass_state

if TYPE_CHECKING:
    from sprongus.service.audit_query import AuditQuery

TIME_HELP = "RFC 3339 (2026-01-01T00:00:00Z; no offset means UTC) or an age: 30m, 12h, 7d."


@click.group("audit", cls=LocalGroup)
def audit_group() -> None:
    """The audit trail (local: this machine's vault): list, export as JSON lines, verify."""


def _query(**given: str | None) -> AuditQuery:
    from sprongus.service.audit_query import AuditQuery

    return AuditQuery(**given)


@audit_group.command("list")
@click.option("--scope", help="Only this scope: user:<id>, project:<id> or system.")
@click.option("--key", help="Only events naming this key.")
@click.option("--actor", help="Only this actor (an OS user, a token's subject, anonymous).")
@click.option("--action", help="Only this action (create, update, reveal, delete, authenticate, ...).")
@click.option("--since", help="From this time on (inclusive). " + TIME_HELP)
@click.option("--until", help="Before this time (exclusive). " + TIME_HELP)
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many events (1-500).")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of events (the export's shape).")
@pass_state
def list_command(state: CliState, scope: str | None, key: str | None, actor: str | None, action: str | None,
                 since: str | None, until: str | None, limit: int, as_json: bool) -> None:
    """The newest events first, as a table: seq, time, actor, action, outcome, scope, key, version."""
    reader = state.get_container().audit_reader()
    page = reader.list(state.principal, _query(scope=scope, key=key, actor=actor, action=action, since=since,
                                               until=until), None, limit)
    if as_json:
        emit_json([event.to_dict() for event in page.items])
        return
    if not page.items:
        info("no audit events match", err=False)
        return
    rows = [[str(e.seq), _short_time(e.to_dict()["time"]), e.actor, e.action, e.outcome, e.scope or "-",
             e.key_name or "-", "-" if e.version is None else str(e.version)] for e in page.items]
    click.echo(table(["seq", "time", "actor", "action", "outcome", "scope", "key", "version"], rows))
    if page.next_cursor is not None:
        info(f"(the newest {len(page.items)}; older events with --until or a larger --limit)")


def _short_time(iso: str) -> str:
    """Seconds are enough in a table (--json and export keep microseconds)."""
    return iso[:19] + "Z"


@audit_group.command("export")
@click.option("--since", help="From this time on (inclusive). " + TIME_HELP)
@click.option("--until", help="Before this time (exclusive). " + TIME_HELP)
@click.option("--scope", help="Only this scope: user:<id>, project:<id> or system.")
@pass_state
def export_command(state: CliState, since: str | None, until: str | None, scope: str | None) -> None:
    """Every event as JSON lines on stdout, oldest first, for a SIEM: read a page at a time (constant memory)."""
    reader = state.get_container().audit_reader()
    events = reader.export(state.principal, _query(scope=scope, since=since, until=until))
    out = sys.stdout
    for event in events:
        out.write(json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts: ok, events, problems, newestCheckpoint.")
@pass_state
def verify_command(state: CliState, as_json: bool) -> None:
    """Walk the hash chain and its checkpoints: exit 7 naming each problem (an edited, deleted or reordered row,
    rows missing before a checkpoint, a forged checkpoint); exit 8 when the database or the key provider is
    unavailable (an outage is not tampering)."""
    from sprongus.domain.times import utc_iso

    report = state.get_container().audit_reader().verify(state.principal)
    newest = report.newest_checkpoint
    where = None if newest is None else {"seq": newest.seq, "count": newest.count, "time": utc_iso(newest.time),
                                         "keyId": newest.key_id}
    if as_json:
        body: dict[str, Any] = {"ok": not report.problems, "events": report.checked, "problems": report.problems,
                                "checkpoints": report.checkpoints, "macsChecked": report.macs_checked,
                                "newestCheckpoint": where, "notes": list(report.notes)}
        emit_json(body)
    else:
        for problem in report.problems:
            click.echo(problem)
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        anchor = ("no checkpoint yet" if where is None
                  else f"newest checkpoint at seq {where['seq']} ({where['time']}, {where['count']} events)")
        if report.problems:  # a finding, never a notice: -q keeps it
            click.echo(f"{report.checked} events, {anchor}: PROBLEMS FOUND", err=True)
        else:
            info(f"ok, {report.checked} events, {anchor}", err=False)
    if report.problems:
        raise click.exceptions.Exit(EXIT_INTEGRITY)
