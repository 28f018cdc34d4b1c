"""`sprongus secrets set|get|unset|list`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sprongus.domain.errors import ConfirmationRequired, ValidationError
from sprongus.domain.scope import Scope
from sprongus.entrypoints.cli.output import describe, emit_json, format_meta, info, table
from sprongus.entrypoints.cli.params import KEY, PREFIX, SCOPE, VERSION
from sprongus.entrypoints.cli.state import CliState, pass_state, remote_option
from sprongus.entrypoints.cli.values import parse_meta, read_value

if TYPE_CHECKING:  # the domain's records load only in the commands that list, not for --help
    from collections.abc import Iterator

    from sprongus.domain.records import SecretView
    from sprongus.ports.secrets_api import SecretsApi


class _SetCommand(click.Command):
    """A VALUE starting with `-` is read as an option, and Click's "No such option: ..." repeated it whole on
    stderr: the secret, in a terminal's scrollback or a CI log. The answer names the rule, never the word."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption:
            raise ValidationError("value", "an unknown option, or a VALUE starting with - (not repeated here): put "
                                  "-- before the value (sprongus secrets set SCOPE KEY -- VALUE), or give it on "
                                  "stdin") from None


@remote_option
@click.command("set", cls=_SetCommand)
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY)
@click.argument("value", required=False)
@click.option("--file", "file", type=click.Path(path_type=Path, dir_okay=False),
              help="Read the value from a file, byte for byte.")
@click.option("--json", "as_json", is_flag=True,
              help="The value must parse as JSON (stored as given). For a JSON report, --print-json.")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="A non-secret tag; repeatable.")
# Not --json: that flag already says the value is JSON, and scripts rely on it refusing anything else.
@click.option("--print-json", is_flag=True, help="Print the result as JSON: scope, keyName, version, created.")
@pass_state
def set_command(state: CliState, scope: Scope, key: str, value: str | None, file: Path | None, as_json: bool,
                meta: tuple[str, ...], print_json: bool) -> None:
    """Store a new version of a secret. VALUE, `-` (stdin), piped stdin, --file, or a hidden prompt."""
    tags = parse_meta(meta)
    secret = read_value(value, file, as_json)
    result = state.api.set(scope, key, secret, tags)
    if print_json:
        emit_json({"scope": str(scope), "keyName": key, "version": result.view.version, "created": result.created})
        return
    verb = "created" if result.created else "updated"
    info(f"{verb} {scope} {key} (version {result.view.version})", err=False)


@remote_option
@click.command("get")
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY)
@click.option("--reveal", is_flag=True, help="Print the plaintext value (asks for confirmation).")
@click.option("--yes", is_flag=True, help="Confirm --reveal without a prompt (required without a terminal).")
@click.option("--json", "as_json", is_flag=True, help="The record as JSON.")
@click.option("--no-newline", is_flag=True, help="With --reveal: no newline after the value.")
@click.option("--version", "version", type=VERSION, default=None,
              help="A kept version instead of the current one (`secrets history` lists them).")
@pass_state
def get_command(state: CliState, scope: Scope, key: str, reveal: bool, yes: bool, as_json: bool,
                no_newline: bool, version: int | None) -> None:
    """Show a secret's record, masked; --reveal prints the value alone."""
    if not reveal:
        view = state.api.get(scope, key, version=version)
        emit_json(view.to_dict()) if as_json else click.echo(describe(view))
        return
    which = "the value" if version is None else f"version {version}"
    confirm_reveal(f"Reveal {which} of {key} in {scope}?", yes)
    view = state.api.get(scope, key, reveal=True, version=version)
    if as_json:
        emit_json(view.to_dict())
        return
    assert view.value is not None
    click.echo(view.value.reveal(), nl=not no_newline)


def confirm_reveal(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationRequired("reveal: confirmation required; pass --yes when not on a terminal")
    if not click.confirm(question, default=False, err=True):
        raise ConfirmationRequired("reveal: confirmation refused")


@remote_option
@click.command("unset")
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: scope, keyName, deleted (and "
              "destroyedVersions with --purge).")
@click.option("--purge", is_flag=True, help="Destroy the secret and every version now, for good (needs "
              "secrets:admin remotely; asks for confirmation).")
@click.option("--yes", is_flag=True, help="Confirm --purge without a prompt (required without a terminal).")
@pass_state
def unset_command(state: CliState, scope: Scope, key: str, as_json: bool, purge: bool, yes: bool) -> None:
    """Delete a secret: kept, with every version, until `secrets restore` or the retention ends; --purge destroys
    it now."""
    if not purge:
        state.api.unset(scope, key)
        if as_json:
            emit_json({"scope": str(scope), "keyName": key, "deleted": True})
            return
        info(f"deleted {scope} {key}", err=False)
        return
    _confirm_purge(scope, key, yes)
    destroyed = state.api.purge(scope, key)
    if as_json:
        emit_json({"scope": str(scope), "keyName": key, "deleted": True, "destroyedVersions": destroyed})
        return
    info(f"purged {scope} {key} ({len(destroyed)} version{'' if len(destroyed) == 1 else 's'} destroyed)",
         err=False)


def _confirm_purge(scope: Scope, key: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():  # a script must say so: nothing brings a purged secret back
        raise ValidationError("purge", "destroys every version for good: pass --yes when not on a terminal")
    if not click.confirm(f"Destroy {key} in {scope} and every version of it, for good?", default=False, err=True):
        raise ConfirmationRequired("purge: confirmation refused")


@remote_option
@click.command("list")
@click.argument("scope", type=SCOPE)
@click.option("--prefix", type=PREFIX, default="", help="Only key names starting with this prefix.")
@click.option("--meta", "with_meta", is_flag=True, help="Include meta tags.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--deleted", is_flag=True, help="List the deleted secrets (that `secrets restore` can bring back).")
@pass_state
def list_command(state: CliState, scope: Scope, prefix: str, with_meta: bool, as_json: bool, deleted: bool) -> None:
    """List key names of a scope (never values)."""
    if deleted:
        views = list(_deleted_views(state.api, scope, prefix, with_meta))
    else:
        from sprongus.service.pages import api_views  # loads the domain's records: not for --help

        views = list(api_views(state.api, scope, prefix, with_meta))
    if as_json:
        emit_json({"scope": str(scope), "items": [v.to_dict(with_meta=with_meta) for v in views]})
        return
    if not views:
        info(f"no {'deleted ' if deleted else ''}secrets in {scope}" + (f" with prefix {prefix}" if prefix else ""))
        return
    headers = ["key", "version", "updated"] + (["deleted"] if deleted else []) + (["meta"] if with_meta else [])
    rows = [_row(v) + ([v.to_dict().get("deletedAt") or "-"] if deleted else [])
            + ([format_meta(v.meta)] if with_meta else []) for v in views]
    click.echo(table(headers, rows, states=("updated",)))  # a DAMAGED row stands out
    if any(v.damaged for v in views):  # listed by name so it is noticed, never skipped in silence
        click.echo("some stored rows do not decode: `sprongus keys verify` lists them; reading them exits 7",
                   err=True)


def _deleted_views(api: SecretsApi, scope: Scope, prefix: str, with_meta: bool) -> Iterator[SecretView]:
    """Every deleted secret of the scope, following nextCursor (as service/pages.py's api_views does for live ones)."""
    from sprongus.service.pages import API_PAGE, following

    return following(lambda cursor: api.list(scope, prefix, with_meta, cursor, API_PAGE, deleted=True))


def _row(view: SecretView) -> list[str]:
    if view.damaged:
        return [view.key, "-", "DAMAGED"]
    return [view.key, str(view.version), view.to_dict()["updatedAt"]]
