"""`sprongus secrets rotate|run`."""

from __future__ import annotations

import os
import sys

import click

from sprongus.domain.errors import ValidationError
from sprongus.domain.scope import Scope
from sprongus.entrypoints.cli.output import emit_json, info, progress
from sprongus.entrypoints.cli.params import KEY, PREFIX, SCOPE
from sprongus.entrypoints.cli.run_env import child_environment, keep_out_of_reach, variables_for
from sprongus.entrypoints.cli.state import CliState, pass_state, remote_option


@remote_option
@click.command("rotate")
@click.argument("scope", type=SCOPE)
@click.argument("key", type=KEY, required=False)
@click.option("--prefix", type=PREFIX, default="", help="Rotate every key under this prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: scope, keyName, prefix, rotated.")
@pass_state
def rotate_command(state: CliState, scope: Scope, key: str | None, prefix: str, as_json: bool) -> None:
    """Re-encrypt with a fresh data key (version+1): one key, a prefix, or the whole scope."""
    if key and prefix:
        raise ValidationError("prefix", "give either KEY or --prefix, not both")
    from sprongus.service.pages import api_views  # loads the domain's records: not for --help

    count = None if key else (lambda: sum(1 for _ in api_views(state.api, scope, prefix)))
    with progress("rotating", total=count) as report:
        result = state.api.rotate(scope, key, prefix, progress=report)
    if as_json:
        emit_json({"scope": str(scope), "keyName": key, "prefix": prefix, "rotated": result.rotated})
        return
    info(f"rotated {result.rotated} secret{'s' if result.rotated != 1 else ''} in {scope}", err=False)


RUN_USAGE = "sprongus secrets run SCOPE [OPTIONS] -- COMMAND [ARG]..."
_VALUED = ("--prefix", "--allow-env")  # run's options that take a value: the word after them is not the command


class _RunCommand(click.Command):
    """`secrets run SCOPE python3 -c ...` without `--` reads `-c` as an option of ours: say how to fix it, in one
    line. An unknown option before the command (a typo of ours, `--overide`) keeps Click's own message."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # Click's parser consumes the list it is handed
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            if _after_command(given, exc.option_name):
                raise ValidationError("command", f"put -- before it: {RUN_USAGE}") from None
            raise


def _after_command(args: list[str], option: str) -> bool:
    """Whether `option` comes after SCOPE and a first word of the command."""
    words, skip = 0, False
    for arg in args:
        short_cluster = len(option) == 2 and arg.startswith(option) and not arg.startswith("--")  # `ls -lh`
        if arg == option or arg.startswith(option + "=") or short_cluster:
            return words >= 2
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            words += 1
    return False


@remote_option
@click.command("run", cls=_RunCommand)
@click.argument("scope", type=SCOPE)
@click.option("--prefix", type=PREFIX, default="", help="Only secrets under this prefix.")
@click.option("--override", is_flag=True,
              help="Let a secret replace a variable that is already set in the environment (refused otherwise).")
@click.option("--allow-env", "allowed", multiple=True, metavar="NAME",
              help="Allow this variable although it is a loader, shell or interpreter hook (LD_*, PATH, "
              "PYTHON*, ...). Repeatable.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARG]...")
@pass_state
def run_command(state: CliState, scope: Scope, prefix: str, override: bool, allowed: tuple[str, ...],
                command: tuple[str, ...]) -> None:
    """Run COMMAND with the scope's secrets as environment variables (each audited as a reveal).

    A secret never replaces a variable that is already set, unless --override; keys that map to loader, shell or
    interpreter hooks are refused unless each is named with --allow-env. Both are checked before anything is
    revealed; the values are then read with one batch reveal (per 1,000 secrets). COMMAND does not get the raw
    key material of the `env` key provider (SPRONGUS_MASTER_KEYS, SPRONGUS_HMAC_KEYS).
    """
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ValidationError("command", "give the command to run after --")
    from sprongus.service.batch_reveal import reveal_keys  # loads the domain's records: not for --help
    from sprongus.service.pages import api_views

    api = state.api
    names = variables_for((view.key for view in api_views(api, scope, prefix)), os.environ, override=override,
                          allowed=frozenset(allowed))
    why_not = keep_out_of_reach()  # before the values are in this process's memory
    if why_not is not None:
        click.echo(f"warning: could not make this process undumpable ({why_not}): COMMAND, running as you, may "
                   "read its environment and memory", err=True)
    values = reveal_keys(api, scope, names.values())  # only the names that passed: a refused key reveals nothing
    env = child_environment(os.environ)
    for name, key in names.items():
        value = values[key]
        if "\x00" in value.reveal():  # execve cannot carry it: refuse by name rather than fail unexpectedly
            raise ValidationError("key", f"the value of {key} holds a NUL character, which no environment "
                                  "variable can carry")
        env[name] = value.reveal()
    import subprocess  # only `secrets run` starts a process

    try:
        completed = subprocess.run(list(command), env=env, check=False)  # noqa: S603 - the user's own command
    except OSError as exc:
        raise ValidationError("command", f"cannot run {command[0]}: {exc.strerror or type(exc).__name__}") from None
    code = completed.returncode
    sys.exit(128 - code if code < 0 else code)
