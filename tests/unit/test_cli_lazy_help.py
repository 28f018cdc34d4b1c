"""`sprongus --help` and the shells' completion list every command from its summary, without loading the command's
module, and say exactly what they said when they loaded them all (cli/lazy.py, root.py's SUMMARIES)."""

from __future__ import annotations

from collections.abc import Sequence

import click
import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from sprongus.entrypoints.cli.lazy import LazyGroup, Loader
from sprongus.entrypoints.cli.root import COMMANDS, SUMMARIES, RootGroup, cli

WIDTHS = (40, 60, 80, 120, 200)


def _first_paragraph(command: click.Command) -> str:
    return " ".join((command.help or "").split("\n\n")[0].split())


def test_every_lazy_command_of_the_root_has_a_summary() -> None:
    # A command without one still works, but `--help` would load its module again.
    assert set(SUMMARIES) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_first_paragraph_of_its_commands_help(name: str) -> None:
    command = cli.commands[name]
    assert not command.short_help  # Click would list a short_help instead of the help: the summary would differ
    assert SUMMARIES[name] == _first_paragraph(command)
    for limit in (20, 45, 70, 200):
        assert click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit) == \
            command.get_short_help_str(limit)


def _counting(loaded: list[str]) -> dict[str, Loader]:
    def loader_of(name: str, real: Loader) -> Loader:
        def load() -> Sequence[click.Command]:
            loaded.append(name)
            return real()
        return load
    return {name: loader_of(name, real) for name, real in COMMANDS.items()}


def _help(group: click.Group, width: int) -> str:
    result = CliRunner().invoke(group, ["--help"], prog_name="sprongus", terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("width", WIDTHS)
def test_help_loads_no_command_and_says_what_the_loaded_commands_say(width: int) -> None:
    loaded: list[str] = []
    group = LazyGroup("sprongus", lazy=_counting(loaded), summaries=SUMMARIES, help=cli.help)

    lazy_help = _help(group, width)
    assert loaded == []
    assert "Commands:" in lazy_help and "secrets" in lazy_help

    assert set(group.commands) == set(COMMANDS)  # every module loaded now
    assert _help(group, width) == lazy_help


def _candidates(group: click.Group, incomplete: str) -> list[tuple[str, str | None]]:
    """What `sprongus <incomplete><TAB>` offers: the values and the help zsh and fish show beside them."""
    completion = ShellComplete(group, {}, "sprongus", "_SPRONGUS_COMPLETE")
    return [(item.value, item.help) for item in completion.get_completions([], incomplete)]


@pytest.mark.parametrize("incomplete", ["", "s", "lo", "au", "-", "--q", "zz"])
def test_completion_loads_no_command_and_offers_what_the_loaded_commands_offer(incomplete: str) -> None:
    loaded: list[str] = []
    group = RootGroup("sprongus", lazy=_counting(loaded), summaries=SUMMARIES, params=cli.params,
                      context_settings=cli.context_settings)

    lazy_candidates = _candidates(group, incomplete)
    assert loaded == []

    assert set(group.commands) == set(COMMANDS)
    # Not against the module's `cli`: a test that builds a bare click.Context for it (test_cli_help.py) leaves it
    # with a help option cached without `-h`.
    assert _candidates(group, incomplete) == lazy_candidates
    if incomplete == "s":
        assert [value for value, _ in lazy_candidates] == ["secrets", "serve"]


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
