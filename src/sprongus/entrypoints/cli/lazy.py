"""A Click group whose subcommands' modules load when the command line names them.

A command's module brings its own imports and builds its Click objects: loading every group for every command cost
~5 ms of a local `secrets get`. A mistyped name and anything reading `.commands` see them all. Help and the shells'
completion list a command that is not loaded yet by its summary, when the group was given one: `sprongus --help`
loaded every command's module only to print one line of each (~38 million instructions, a fifth of its start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

# Imports a module (with a plain import statement, so that the layering checks see the arrow) and returns the
# commands it defines: one loader may serve several names (`auth`, `login` and `logout` share a module).
Loader = Callable[[], Sequence[click.Command]]


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy: Mapping[str, Loader] | None = None,
                 summaries: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        """`summaries`: a lazy command's help as help lists it (the first paragraph of its own), by name. A hidden
        command gets none: its stand-in would be listed."""
        self._lazy: dict[str, Loader] = dict(lazy or {})
        self._summaries = dict(summaries or {})
        super().__init__(*args, **kwargs)

    @property  # Click declares a plain attribute: reading this one loads every command first
    def commands(self) -> MutableMapping[str, click.Command]:
        while self._lazy:
            self._load(next(iter(self._lazy)))
        return self._loaded

    @commands.setter
    def commands(self, value: MutableMapping[str, click.Command]) -> None:
        self._loaded = value

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Click's, without reading `commands` (which would load the lazy ones); no chained groups here."""
        name = name or cmd.name
        if name is None:
            raise TypeError("Command has no name.")
        self._lazy.pop(name, None)
        self._loaded[name] = cmd

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            self._load(cmd_name)
        return self._loaded.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._loaded, *self._lazy})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's own listing (same rows, same widths), where a command not loaded yet that has a summary is
        represented by a stand-in with that help: Click shortens it exactly as it would the command's."""
        shown = [(name, command) for name in self.list_commands(ctx)
                 if (command := self._listed(ctx, name)) is not None and not command.hidden]
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Click's candidates (the visible commands that start with `incomplete`, each with its short help, then
        the options'), with the same stand-ins as help: `sprongus <TAB>` in zsh or fish loads no command's module."""
        from click.shell_completion import CompletionItem

        results = [CompletionItem(name, help=command.get_short_help_str()) for name in self.list_commands(ctx)
                   if name.startswith(incomplete)
                   and (command := self._listed(ctx, name)) is not None and not command.hidden]
        results.extend(click.Command.shell_complete(self, ctx, incomplete))  # the options, past Group's commands
        return results

    def _listed(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy and name in self._summaries:
            return click.Command(name, help=self._summaries[name])
        return self.get_command(ctx, name)

    def _load(self, name: str) -> None:
        loader = self._lazy[name]
        for command in loader():
            self.add_command(command)
        missing = [other for other, each in self._lazy.items() if each is loader]
        if missing:  # a mapping that promises a name its module does not define: loudly, not "No such command"
            raise RuntimeError(f"{loader.__qualname__} defines no command {', '.join(missing)}")
