"""`secrets export --reveal`'s formats: dotenv, JSON and shell text that give back every value exactly.

Variables are named as `secrets run` names them (`notion.api_token` -> `NOTION_API_TOKEN`). A value may hold
anything a key name cannot: quotes, backslashes, `$`, newlines and carriage returns, any Unicode. Each format
escapes what its reader would otherwise change:

- dotenv: double quotes, with the escapes python-dotenv decodes in them (`\\\\`, `\\"`, `\\n`, `\\r`, `\\t`, ...),
  so every value stays on one line: its reader opens the file with universal newlines, which would turn a raw
  carriage return inside quotes into a newline. A value holding `$` or a backquote goes in single quotes instead:
  a dotenv file is also sourced by sh (`set -a; . ./app.env`), which runs `$(...)` and backquotes inside double
  quotes. Single quotes are literal to sh (python-dotenv still expands `${...}` in them: `interpolated` warns),
  but hold no escape a shell and python-dotenv read alike, so such a value with a quote, a backslash or a line
  break is refused by its key (`--format shell` carries it).
- shell: `export NAME='...'`, where nothing is special but the quote itself (written `'\\''`), for `source`/`eval`.
- json: `{"NAME": "value"}`.

NUL cannot live in an environment variable or a shell word, so shell and dotenv refuse such a value by its key.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from sprongus.domain.errors import ValidationError
from sprongus.entrypoints.cli.run_env import env_name, is_hook

FORMATS = ("dotenv", "json", "shell")
_NOT_LITERAL = ("'", "\\", "\n", "\r")  # what a single-quoted dotenv value cannot hold the same way for sh
_DOTENV_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a",
                                 "\b": "\\b", "\f": "\\f", "\v": "\\v"})


def variable_names(keys: Iterable[str], hooks_allowed: Collection[str] | None = None) -> dict[str, str]:
    """variable -> key; two keys naming one variable (`a.b` and `A_B`) are refused by name: one would be lost.

    `hooks_allowed` (dotenv and shell, which are sourced into an environment): a key that maps to a loader, shell
    or interpreter hook is refused, as `secrets run` refuses it, unless its variable is named there. Checked on
    the names, before anything is revealed."""
    names: dict[str, str] = {}
    for key in keys:
        name = env_name(key)
        if name in names:
            raise ValidationError("key", f"{names[name]} and {key} both map to {name}; export them with --prefix "
                                  "apart, or rename one")
        if hooks_allowed is not None and is_hook(name) and name not in hooks_allowed:
            raise ValidationError("key", f"{key} maps to ${name}, a loader, shell or interpreter hook; refused "
                                  f"unless --allow-env {name}")
        names[name] = key
    return names


def render(format_: str, names: dict[str, str], values: dict[str, str]) -> str:
    """The document for variable -> key `names`, with `values` by key."""
    if format_ == "json":
        return json.dumps({name: values[key] for name, key in names.items()}, indent=2, ensure_ascii=False) + "\n"
    for key in names.values():
        if "\x00" in values[key]:
            raise ValidationError("key", f"the value of {key} holds a NUL character, which no {format_} file "
                                  "can carry; use --format json")
        if format_ == "dotenv" and _shell_active(values[key]) and any(c in values[key] for c in _NOT_LITERAL):
            raise ValidationError("key", f"the value of {key} holds $ or a backquote and a quote, backslash or line "
                                  "break: no dotenv line keeps it from running when sourced; use --format shell "
                                  "or json")
    line = _dotenv_line if format_ == "dotenv" else _shell_line
    return "".join(line(name, values[key]) + "\n" for name, key in names.items())


def interpolated(names: dict[str, str], values: dict[str, str]) -> list[str]:
    """Keys whose values hold `${`: python-dotenv expands it even inside quotes unless read with interpolate=False
    (there is no escape for it), so a dotenv export of them says so."""
    return [key for key in names.values() if "${" in values[key]]


def _dotenv_line(name: str, value: str) -> str:
    if _shell_active(value):
        return f"{name}='{value}'"  # render refused what single quotes cannot hold
    return f'{name}="{value.translate(_DOTENV_ESCAPES)}"'


def _shell_active(value: str) -> bool:
    return "$" in value or "`" in value


def _shell_line(name: str, value: str) -> str:
    return "export " + name + "='" + value.replace("'", "'\\''") + "'"
