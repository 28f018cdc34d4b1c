"""Reads a secret value from exactly one source: argument, stdin, file or a hidden prompt."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sprongus.domain.errors import ValidationError
from sprongus.domain.values import SecretValue

HISTORY_WARNING = ("warning: a value given on the command line lands in your shell history and the process "
                   "list; prefer `-` (stdin) or --file")


def read_value(value: str | None, file: Path | None, as_json: bool) -> SecretValue:
    if value is not None and file is not None:
        raise ValidationError("value", "give either VALUE (or -) or --file, not both")
    if file is not None:
        secret = _from_file(file)
    elif value == "-" or (value is None and not sys.stdin.isatty()):
        secret = _from_stdin()
    elif value is None:
        secret = SecretValue(click.prompt("Value", hide_input=True, confirmation_prompt=True, err=True,
                                          default="", show_default=False))
    else:
        click.echo(HISTORY_WARNING, err=True)
        secret = SecretValue(value)
    if as_json:
        try:
            json.loads(secret.reveal())
        except ValueError:
            raise ValidationError("json", "the value must be valid JSON (--json)") from None
    return secret


def _from_stdin() -> SecretValue:
    data = sys.stdin.buffer.read()
    if not data:
        # `sprongus secrets set S K < /dev/null` (or an empty variable piped in) stored "" without a word. An empty
        # value stays legal, so it is stored; the warning makes the accident visible.
        click.echo("warning: the value is empty (stdin was empty); stored as given", err=True)
    # `echo "$TOKEN" | sprongus secrets set ...` must store the token, not the token and a newline.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return SecretValue.from_bytes(data)


def _from_file(path: Path) -> SecretValue:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError("file", f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    return SecretValue.from_bytes(data)


def read_passphrase(path: Path | None) -> SecretValue | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError("passphrase-file", f"cannot read {path}: {exc.strerror or 'error'}") from None
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValidationError("passphrase-file", "the passphrase must be UTF-8 text") from None
    if len(text) < 8:
        raise ValidationError("passphrase-file", "the passphrase must be at least 8 characters")
    return SecretValue(text)


def parse_meta(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    meta: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError("meta", "each --meta must be key=value")
        meta[key] = value
    return meta
