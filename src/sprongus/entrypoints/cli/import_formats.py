"""Parses import files: dotenv (python-dotenv rules), JSON key/value maps or item lists, and bundles."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from sprongus.domain.bundle import BUNDLE_FORMAT
from sprongus.domain.errors import ValidationError
from sprongus.domain.import_item import ImportItem, parse_items
from sprongus.domain.json_objects import RepeatedName, unique_names
from sprongus.domain.names import KEY_NAME_RULE, KEY_NAME_WORDS
from sprongus.domain.scope import Scope

FORMATS = ("json", "dotenv", "bundle")
_ITEM_FIELD = re.compile(r"items\[(\d+)\](?:\.(\w+))?")


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ValidationError("file", f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ValidationError("file", f"{path} is not UTF-8 text") from None


def guess_format(path: Path, text: str) -> str:
    if path.suffix == ".env" or path.name.startswith(".env"):
        return "dotenv"
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes; JSON all the same
        # Broken JSON must fail as JSON: read as dotenv, it would import nothing (or, with --replace, delete).
        return "json" if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")) else "dotenv"
    return "bundle" if isinstance(doc, dict) and doc.get("format") == BUNDLE_FORMAT else "json"


def parse_dotenv(text: str, scope: Scope | None, prefix: str = "") -> list[ImportItem]:
    """The file's `NAME=value` pairs, as python-dotenv's `dotenv_values(interpolate=False)` reads them (the last of
    a repeated name wins, in the place of the first). Errors name the line, never the name or the value: a line
    without `=` may be a pasted value."""
    from dotenv.parser import parse_stream

    if scope is None:
        raise ValidationError("scope", "a dotenv import needs --scope")
    values: dict[str, str | None] = {}
    lines: dict[str, int] = {}
    # newline=None: universal newlines, as python-dotenv's own open() of a file reads it (a CRLF file's multi-line
    # value holds \n, not \r\n).
    for binding in parse_stream(io.StringIO(text, newline=None)):
        # python-dotenv skips a statement it cannot parse; an import is all or nothing, so refuse the file instead.
        if binding.error:
            raise ValidationError("dotenv", f"cannot parse the statement at line {binding.original.line}")
        if binding.key is not None:
            values[binding.key] = binding.value
            lines[binding.key] = binding.original.line
    for key, value in values.items():
        if value is None:
            raise ValidationError(f"line {lines[key]}", "a name without '=' (write NAME= for an empty value)")
        if prefix and not key.startswith(prefix):  # the import checks it too, but could only name items[N]
            raise ValidationError(f"line {lines[key]}", f"key: must start with the import's prefix {prefix}")
    try:
        return parse_items([{"key": k, "value": v} for k, v in values.items()], default_scope=scope)
    except ValidationError as exc:
        raise _on_line(exc, list(lines.values())) from None


def _on_line(exc: ValidationError, lines: list[int]) -> ValidationError:
    """`items[1].key: RULE` -> `line 3: key: RULE`: a dotenv file has lines, not items."""
    where = _ITEM_FIELD.fullmatch(exc.field or "")
    if where is None:
        return exc
    part = where.group(2)
    rule = KEY_NAME_WORDS if part == "key" else exc.rule
    return ValidationError(f"line {lines[int(where.group(1))]}", f"{part}: {rule}" if part else rule)


def parse_json_items(text: str, scope: Scope | None) -> list[ImportItem]:
    doc = _json(text)
    try:
        if isinstance(doc, dict) and "items" in doc and isinstance(doc["items"], list):
            return parse_items(doc["items"], default_scope=scope)
        if isinstance(doc, dict):
            if scope is None:
                raise ValidationError("scope", 'a {"KEY": "value"} JSON import needs --scope')
            return parse_items([{"key": k, "value": v} for k, v in doc.items()], default_scope=scope)
    except ValidationError as exc:
        if exc.field and exc.field.endswith(".key") and exc.rule == KEY_NAME_RULE:
            raise ValidationError(exc.field, KEY_NAME_WORDS) from None  # words for people, as for the KEY argument
        raise
    raise ValidationError("json", 'must be {"KEY": "value", ...} or {"items": [...]}')


def parse_bundle(text: str, passphrase_file: Path | None = None) -> dict[str, Any]:
    doc = _json(text)
    if not isinstance(doc, dict):
        raise ValidationError("bundle", f"must be a JSON document with format {BUNDLE_FORMAT}")
    protection = doc.get("protection")
    if passphrase_file is None and isinstance(protection, dict) and protection.get("type") == "passphrase":
        # The import would refuse it too, but in the API's words, which cannot name the CLI's option.
        raise ValidationError("passphrase-file", "this bundle is protected by a passphrase; add --passphrase-file FILE")
    return doc


def _json(text: str) -> Any:
    try:
        # {"KEY": "a", "KEY": "b"} kept the last silently, where a repeated key in an items list is refused.
        return json.loads(text, object_pairs_hook=unique_names)
    except RepeatedName:
        raise ValidationError("json", "an object repeats a name; give each key once") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        raise ValidationError("json", f"the file is not valid JSON (line {line})") from None
    except RecursionError:  # `[[[[...` thousands deep: Python's parser gives up before the file ends
        raise ValidationError("json", "the file nests too deep to read (no import format nests more than a few "
                                      "levels)") from None
