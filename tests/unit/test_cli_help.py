"""Every command and every option of the CLI explains itself in `--help`: walked over the whole Click tree, so a
new option without help text fails here (`export --prefix`, `import --file`, `keys status --json` and
`tokens list --json` once had none)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from sprongus.entrypoints.cli import cli


def _commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, f"{path} {name}")


COMMANDS = dict(_commands(cli, "sprongus"))


def test_the_walk_sees_every_group_and_command() -> None:
    assert {"sprongus secrets export", "sprongus secrets import", "sprongus keys status", "sprongus tokens list",
            "sprongus serve", "sprongus login", "sprongus db upgrade"} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_and_option_has_help_text(path: str) -> None:
    command = COMMANDS[path]
    # With the help option names every command inherits from the root when it runs: Click caches a command's help
    # option the first time a context asks, and a bare context left the CLI's own objects without `-h`.
    context = click.Context(command, info_name=path, help_option_names=cli.context_settings["help_option_names"])

    assert (command.help or command.short_help or "").strip(), f"{path}: no help text"
    for param in command.get_params(context):
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{path} {'/'.join(param.opts)}: no help text"
