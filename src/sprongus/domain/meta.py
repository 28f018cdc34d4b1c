"""Meta: a small JSON object of non-secret tags attached to a secret (docs/design.md#names-and-limits)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sprongus.domain.errors import ValidationError
from sprongus.domain.text import utf8_encodable

MAX_META_BYTES = 4096
MAX_META_STRING = 256
_META_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
# Meta lands in Postgres JSONB, which refuses NUL and lone surrogates (each was a 503 before these rules), and in
# other languages' JSON readers, which lose integers past 64 bits. Python's json accepts all three.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MetaValue = str | int | float | bool | None


def validate_meta(meta: object, field: str = "meta") -> dict[str, MetaValue]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise ValidationError(field, "must be a JSON object")
    clean: dict[str, MetaValue] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not _META_KEY.fullmatch(key):
            raise ValidationError(field, "keys must match ^[a-z][a-z0-9_.-]{0,63}$")
        clean[key] = _validate_meta_value(value, field)
    if len(dump_meta(clean).encode()) > MAX_META_BYTES:
        raise ValidationError(field, f"must be at most {MAX_META_BYTES} bytes serialized")
    return clean


def _validate_meta_value(value: Any, field: str) -> MetaValue:
    """The rules name no key: a key is the client's text, and error answers repeat none of it."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError(field, "values must be integers within 64 bits")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(field, "values must be finite numbers")
        return value
    if isinstance(value, str):
        if len(value) > MAX_META_STRING:
            raise ValidationError(field, f"string values must be at most {MAX_META_STRING} chars")
        if "\x00" in value or not utf8_encodable(value):
            raise ValidationError(field, "string values must be UTF-8 text without NUL characters")
        return value
    raise ValidationError(field, "values must be strings, numbers, booleans or null")



def dump_meta(meta: Mapping[str, MetaValue]) -> str:
    """Canonical serialization (sorted keys, compact) used for storage, size checks and MACs."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
