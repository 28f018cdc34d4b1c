"""`export --reveal`'s dotenv and JSON texts give back any value exactly (shell and bash: tests/e2e)."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from sprongus.domain.errors import ValidationError
from sprongus.entrypoints.cli.plaintext_formats import interpolated, render, variable_names

# Any text but NUL, surrogates excluded (values are UTF-8).
VALUES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=80)


def read_dotenv(text: str) -> dict[str, str | None]:
    # newline=None: universal newlines, as python-dotenv's own open() of a file reads it.
    return dict(dotenv_values(stream=io.StringIO(text, newline=None), interpolate=False))


def sh_cannot_keep(value: str) -> bool:
    """`$` or a backquote with what single quotes cannot hold alike for sh and python-dotenv: dotenv refuses it."""
    return any(c in value for c in "$`") and any(c in value for c in "'\\\n\r")


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=4))
def test_any_values_survive_dotenv_and_json(values: list[str]) -> None:
    names = {f"K{i}": f"k{i}" for i in range(len(values))}
    by_key = {f"k{i}": value for i, value in enumerate(values)}
    expected = {f"K{i}": value for i, value in enumerate(values)}
    assert json.loads(render("json", names, by_key)) == expected
    if any(sh_cannot_keep(value) for value in values):
        with pytest.raises(ValidationError, match="use --format shell or json") as refused:
            render("dotenv", names, by_key)
        assert all(value not in str(refused.value) for value in values if sh_cannot_keep(value))
        return
    assert read_dotenv(render("dotenv", names, by_key)) == expected


SHELL_ACTIVE = ["x$(touch {marker})", "`touch {marker}`", "${{HOME}}$HOME", "a$(touch {marker})b\tc d"]


@pytest.mark.parametrize("template", SHELL_ACTIVE)
def test_a_sourced_dotenv_export_runs_nothing_and_sh_reads_the_value_exactly(tmp_path: Path,
                                                                               template: str) -> None:
    """`set -a; . ./app.env` is how many entrypoints load a dotenv file: sh expands $(...) and backquotes inside
    double quotes, so such a value goes in single quotes, which both sh and python-dotenv read literally."""
    marker = tmp_path / "ran"
    value = template.format(marker=marker)
    env_file = tmp_path / "app.env"
    env_file.write_text(render("dotenv", {"API_TOKEN": "k"}, {"k": value}))
    done = subprocess.run(["sh", "-c", 'set -a; . "$1"; printf %s "$API_TOKEN"', "sh", str(env_file)],
                          capture_output=True, text=True, timeout=10, check=True)
    assert not marker.exists()
    assert done.stdout == value
    assert read_dotenv(env_file.read_text()) == {"API_TOKEN": value}


def test_a_value_sh_would_run_that_single_quotes_cannot_hold_is_refused_by_its_key() -> None:
    for value in ("$(id)'", "`id`\\", "$x\nline"):
        with pytest.raises(ValidationError, match="the value of k holds \\$ or a backquote") as refused:
            render("dotenv", {"K": "k"}, {"k": value})
        assert value not in str(refused.value)
        assert "export K=" in render("shell", {"K": "k"}, {"k": value})  # the shell format carries it


def test_dotenv_keeps_one_line_per_variable() -> None:
    text = render("dotenv", {"A": "a", "B": "b"}, {"a": "1\r\n2\n3\r", "b": 'q"\\'})
    assert text == 'A="1\\r\\n2\\n3\\r"\nB="q\\"\\\\"\n'


def test_shell_quotes_only_the_quote() -> None:
    assert render("shell", {"A": "a"}, {"a": "it's $HOME\n\\"}) == "export A='it'\\''s $HOME\n\\'\n"


def test_two_keys_of_one_variable_are_named() -> None:
    with pytest.raises(ValidationError, match=r"db\.url and DB-URL both map to DB_URL"):
        variable_names(["db.url", "DB-URL"])
    assert variable_names(["notion.api_token", "x"]) == {"NOTION_API_TOKEN": "notion.api_token", "X": "x"}


@pytest.mark.parametrize("fmt", ["shell", "dotenv"])
def test_nul_is_refused_by_key_outside_json(fmt: str) -> None:
    with pytest.raises(ValidationError, match="the value of k holds a NUL") as caught:
        render(fmt, {"K": "k"}, {"k": "secret\x00tail"})
    assert "secret" not in str(caught.value)
    assert json.loads(render("json", {"K": "k"}, {"k": "secret\x00tail"})) == {"K": "secret\x00tail"}


def test_values_that_dotenv_would_expand_are_named() -> None:
    assert interpolated({"A": "a", "B": "b"}, {"a": "${HOME}", "b": "$HOME"}) == ["a"]
