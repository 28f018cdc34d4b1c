"""`sprongus --help`, `sprongus secrets --help` and the shells' completion list every lazy command from its summary,
without loading the command's module, and say exactly what they said when they loaded them all (cli/lazy.py; the
SUMMARIES of root.py and secrets.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import click
import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from sprongus.entrypoints.cli import root, secrets, secrets_basic
from sprongus.entrypoints.cli.lazy import LazyGroup, Loader

WIDTHS = (40, 60, 80, 120, 200)


class Lazy(NamedTuple):
    group: click.Group  # the CLI's own
    lazy: Mapping[str, Loader]
    summaries: Mapping[str, str]
    eager: Sequence[click.Command]


GROUPS = {"sprongus": Lazy(root.cli, root.COMMANDS, root.SUMMARIES, []),
          "secrets": Lazy(secrets.secrets_group, secrets.LAZY, secrets.SUMMARIES,
                          [secrets_basic.set_command, secrets_basic.get_command, secrets_basic.unset_command,
                           secrets_basic.list_command])}


def _first_paragraph(command: click.Command) -> str:
    return " ".join((command.help or "").split("\n\n")[0].split())


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_lazy_command_has_a_summary(group: str) -> None:
    # A command without one still works, but help and completion would load its module again.
    assert set(GROUPS[group].summaries) == set(GROUPS[group].lazy)


@pytest.mark.parametrize(("group", "name"), [(group, name) for group in sorted(GROUPS) for name in GROUPS[group].lazy])
def test_each_summary_is_the_first_paragraph_of_its_commands_help(group: str, name: str) -> None:
    command = GROUPS[group].group.commands[name]
    summary = GROUPS[group].summaries[name]
    assert not command.short_help  # Click would list a short_help instead of the help: the summary would differ
    assert not command.hidden and not command.deprecated  # a stand-in cannot say either
    assert summary == _first_paragraph(command)
    for limit in (20, 45, 70, 200):
        assert click.Command(name, help=summary).get_short_help_str(limit) == command.get_short_help_str(limit)


def _counting(lazy: Mapping[str, Loader], loaded: list[str]) -> dict[str, Loader]:
    def loader_of(name: str, real: Loader) -> Loader:
        def load() -> Sequence[click.Command]:
            loaded.append(name)
            return real()
        return load
    return {name: loader_of(name, real) for name, real in lazy.items()}


def _fresh(name: str, loaded: list[str]) -> LazyGroup:
    """A new group like the CLI's (nothing loaded), whose loaders note what they load."""
    made = GROUPS[name]
    group = (root.RootGroup if name == "sprongus" else LazyGroup)(
        name, lazy=_counting(made.lazy, loaded), summaries=made.summaries, help=made.group.help,
        params=list(made.group.params), context_settings=made.group.context_settings)
    for command in made.eager:
        group.add_command(command)
    return group


def _clicks_own(group: LazyGroup) -> click.Group:
    """A plain Click group of the same (loaded) commands: Click's own listing and completion, to hold ours to (a
    Click upgrade that changed them would otherwise change both sides of the comparisons above alike)."""
    return click.Group(group.name, commands=dict(group.commands), help=group.help, params=list(group.params),
                       context_settings=group.context_settings)


def _help(group: click.Group, width: int) -> str:
    result = CliRunner().invoke(group, ["--help"], prog_name="sprongus", terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", sorted(GROUPS))
@pytest.mark.parametrize("width", WIDTHS)
def test_help_loads_no_command_and_says_what_the_loaded_commands_say(name: str, width: int) -> None:
    loaded: list[str] = []
    group = _fresh(name, loaded)

    lazy_help = _help(group, width)
    assert loaded == []
    assert "Commands:" in lazy_help and all(command in lazy_help for command in GROUPS[name].lazy)

    assert set(group.commands) >= set(GROUPS[name].lazy)  # every module loaded now
    assert _help(group, width) == lazy_help == _help(_clicks_own(group), width)


def _candidates(group: click.Group, incomplete: str) -> list[tuple[str, str | None]]:
    """What `sprongus <incomplete><TAB>` offers: the values and the help zsh and fish show beside them."""
    completion = ShellComplete(group, {}, "sprongus", "_SPRONGUS_COMPLETE")
    return [(item.value, item.help) for item in completion.get_completions([], incomplete)]


@pytest.mark.parametrize("name", sorted(GROUPS))
@pytest.mark.parametrize("incomplete", ["", "s", "r", "lo", "au", "-", "--q", "zz"])
def test_completion_loads_no_command_and_offers_what_the_loaded_commands_offer(name: str, incomplete: str) -> None:
    loaded: list[str] = []
    group = _fresh(name, loaded)

    lazy_candidates = _candidates(group, incomplete)
    assert loaded == []

    assert set(group.commands) >= set(GROUPS[name].lazy)
    assert _candidates(group, incomplete) == lazy_candidates == _candidates(_clicks_own(group), incomplete)
    if incomplete == "r":
        assert [value for value, _ in lazy_candidates] == (["restore", "rollback", "rotate", "run"]
                                                           if name == "secrets" else [])


def _defines(name: str, help_text: str, hidden: bool = False) -> Loader:
    return lambda: [click.Command(name, help=help_text, hidden=hidden)]


def test_a_command_without_a_summary_is_loaded_for_help_and_a_hidden_one_is_not_listed() -> None:
    group = LazyGroup("tool", lazy={"alpha": _defines("alpha", "Alpha does things."),
                                    "beta": _defines("beta", "Beta, loaded to be listed."),
                                    "ghost": _defines("ghost", "Never listed.", hidden=True)},
                      summaries={"alpha": "Alpha does things."})  # a hidden command gets none: help must load it

    output = _help(group, 80)

    assert "alpha  Alpha does things." in output and "beta   Beta, loaded to be listed." in output
    assert "ghost" not in output  # loaded and left out, as Click does
    assert set(group._loaded) == {"beta", "ghost"}  # alpha's summary sufficed


def test_a_group_whose_commands_are_all_hidden_lists_no_commands_section() -> None:
    group = LazyGroup("tool", lazy={"ghost": _defines("ghost", "Never listed.", hidden=True)})
    assert "Commands" not in _help(group, 80)
