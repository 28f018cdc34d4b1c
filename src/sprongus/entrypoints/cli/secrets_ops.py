"""`sprongus secrets rotate|run`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click

from sprongus.domain.errors import ValidationError
from sprongus.domain.scope import Scope
from sprongus.entrypoints.cli.output import progress
from sprongus.entrypoints.cli.params import KEY, PREFIX, SCOPE
from sprongus.entrypoints.cli.state import CliState, pass_state, remote_option

_ENV_UNSAFE = re.compile(r"[.\-]")


def env_name(key: str) -> str:
    """`notion.api_token` -> `NOTION_API_TOKEN`: upper-case, `.` and `-` become `_`."""
    return _ENV_UNSAFE.sub("_", key).upper()


@remote_option
@click.command("rotate")
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY, required=False)
@click.option("--prefix", type=PREFIX, default="", help="Rotate every key under this prefix.")
@pass_state
def rotate_command(state: CliState, scope: Scope, key: str | None, prefix: str) -> None:
    """Re-encrypt with a fresh data key (version+1): one key, a prefix, or the whole scope."""
    if key and prefix:
        raise ValidationError("prefix", "give either KEY or --prefix, not both")
    with progress("rotating") as report:
        result = state.api.rotate(scope, key, prefix, progress=report)
    click.echo(f"rotated {result.rotated} secret{'s' if result.rotated != 1 else ''} in {scope}")


@remote_option
@click.command("run")
@click.argument("scope", type=SCOPE)
@click.option("--prefix", type=PREFIX, default="", help="Only secrets under this prefix.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def run_command(state: CliState, scope: Scope, prefix: str, command: tuple[str, ...]) -> None:
    """Run COMMAND with the scope's secrets as environment variables (each audited as a reveal)."""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ValidationError("command", "give the command to run after --")
    from sprongus.service.pages import api_views  # loads the domain's records: not for --help

    api = state.api
    names: dict[str, str] = {}
    for view in api_views(api, scope, prefix):
        name = env_name(view.key)
        if name in names:
            raise ValidationError("key", f"{names[name]} and {view.key} both map to ${name}")
        names[name] = view.key
    env = dict(os.environ)
    for name, key in names.items():
        value = api.get(scope, key, reveal=True).value
        assert value is not None
        env[name] = value.reveal()
    try:
        completed = subprocess.run(list(command), env=env, check=False)  # noqa: S603 - the user's own command
    except OSError as exc:
        raise ValidationError("command", f"cannot run {command[0]}: {exc.strerror or type(exc).__name__}") from None
    code = completed.returncode
    sys.exit(128 - code if code < 0 else code)
