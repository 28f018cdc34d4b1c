"""Parses import files: dotenv (python-dotenv rules), JSON key/value maps or item lists, and bundles."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from sprongus.domain.bundle import BUNDLE_FORMAT
from sprongus.domain.errors import ValidationError
from sprongus.domain.import_item import ImportItem, parse_items
from sprongus.domain.scope import Scope

FORMATS = ("json", "dotenv", "bundle")


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
    except ValueError:
        # Broken JSON must fail as JSON: read as dotenv, it would import nothing (or, with --replace, delete).
        return "json" if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")) else "dotenv"
    return "bundle" if isinstance(doc, dict) and doc.get("format") == BUNDLE_FORMAT else "json"


def parse_dotenv(text: str, scope: Scope | None) -> list[ImportItem]:
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    if scope is None:
        raise ValidationError("scope", "a dotenv import needs --scope")
    # python-dotenv skips a statement it cannot parse; an import is all or nothing, so refuse the file instead.
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ValidationError("dotenv", f"cannot parse the statement at line {binding.original.line}")
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    raw = []
    for index, (key, value) in enumerate(values.items()):
        if value is None:
            raise ValidationError(f"items[{index}].value", f"line for {key} has no '=' (use {key}= for empty)")
        raw.append({"key": key, "value": value})
    return parse_items(raw, default_scope=scope)


def parse_json_items(text: str, scope: Scope | None) -> list[ImportItem]:
    doc = _json(text)
    if isinstance(doc, dict) and "items" in doc and isinstance(doc["items"], list):
        return parse_items(doc["items"], default_scope=scope)
    if isinstance(doc, dict):
        if scope is None:
            raise ValidationError("scope", 'a {"KEY": "value"} JSON import needs --scope')
        return parse_items([{"key": k, "value": v} for k, v in doc.items()], default_scope=scope)
    raise ValidationError("json", 'must be {"KEY": "value", ...} or {"items": [...]}')


def parse_bundle(text: str) -> dict[str, Any]:
    doc = _json(text)
    if not isinstance(doc, dict):
        raise ValidationError("bundle", f"must be a JSON document with format {BUNDLE_FORMAT}")
    return doc


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        raise ValidationError("json", f"the file is not valid JSON (line {line})") from None
