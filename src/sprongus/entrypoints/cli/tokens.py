"""`sprongus tokens create|list|revoke`: API tokens, issued by the vault's operator (local mode)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sprongus.domain.times import utc_iso
from sprongus.entrypoints.cli.output import emit_json, info, table
from sprongus.entrypoints.cli.state import CliState, LocalGroup, pass_state

if TYPE_CHECKING:
    from datetime import datetime

    from sprongus.domain.api_token import ApiToken

SCOPES = ["secrets:read", "secrets:write", "secrets:reveal", "secrets:admin"]


@click.group("tokens", cls=LocalGroup)
def tokens_group() -> None:
    """API tokens for the REST API (local: on this machine's vault; opaque, stored only as a hash)."""


@tokens_group.command("create")
@click.option("--subject", required=True, help="Who the token acts as: its user:<subject> scope.")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES),
              help="Repeatable: secrets:read, secrets:write, secrets:reveal, secrets:admin (system scope).")
@click.option("--project", "projects", multiple=True, help="Repeatable: project:<id> scopes it may act on.")
@click.option("--ttl", default="30d", show_default=True, help="Seconds or a number with s, m, h, d.")
@click.option("--kind", type=click.Choice(["operator", "workload"]), default="operator", show_default=True,
              help="workload: for a service or CI job (no recent-auth rule for reveals, the workload reveal limit).")
@click.option("--key-prefix", default="", metavar="PREFIX",
              help="The token sees and touches only keys starting with PREFIX (others answer 404).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the token and its record as JSON: token, id, subject, kind, scopes, ..., expiresAt.")
@pass_state
def create_command(state: CliState, subject: str, scopes: tuple[str, ...], projects: tuple[str, ...],
                   ttl: str, kind: str, key_prefix: str, as_json: bool) -> None:
    """Create a token and print it alone, once: it cannot be shown again (--json: inside the JSON)."""
    from sprongus.domain.api_token import parse_ttl
    from sprongus.domain.principal import TokenKind

    token, record = state.get_container().token_service().create(subject, list(scopes), list(projects),
                                                                   parse_ttl(ttl), TokenKind(kind), key_prefix)
    if as_json:
        emit_json({"token": token.reveal(), **record.to_dict()})
    else:
        click.echo(token.reveal())
    info(f"created {record.id} for {subject}, expires {utc_iso(record.expires_at)}")


@tokens_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts (with each token's state).")
@pass_state
def list_command(state: CliState, as_json: bool) -> None:
    """Tokens with their subject, scopes, expiry and state: active, expired or revoked (never the token)."""
    container = state.get_container()
    records = container.token_service().list()
    now = container.clock().now()
    if as_json:
        emit_json([{**r.to_dict(), "state": _state(r, now)} for r in records])
        return
    rows = [[r.id, r.subject, r.kind.value + (f" ({r.trust})" if r.trust else ""),
             ",".join(sorted(p.value for p in r.permissions)), ",".join(sorted(r.projects)) or "-",
             r.key_prefix or "-", utc_iso(r.expires_at), _state(r, now)] for r in records]
    click.echo(table(["id", "subject", "kind", "scopes", "projects", "key prefix", "expires", "state"], rows,
                     states=("state",)) if rows else "no tokens")


def _state(record: ApiToken, now: datetime) -> str:
    """What authentication would make of the token now: a revoked one stays `revoked` after it expires too."""
    if record.revoked_at is not None:
        return "revoked"
    return "expired" if record.expires_at <= now else "active"


@tokens_group.command("revoke")
@click.argument("token_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: id, revoked.")
@pass_state
def revoke_command(state: CliState, token_id: str, as_json: bool) -> None:
    """Revoke a token by id (from `tokens list`)."""
    state.get_container().token_service().revoke(token_id)
    if as_json:
        emit_json({"id": token_id, "revoked": True})
        return
    info(f"revoked {token_id}", err=False)
