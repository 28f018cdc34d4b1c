"""Rules every request body and header meets before a schema reads it (docs/design.md#api).

Python's json accepts what the rest of the stack cannot hold: nesting deep enough to exhaust the recursion limit,
integers too long for `int()` (4,300 digits), and `\\ud800` escapes that decode to lone surrogates no UTF-8
encoder, database or log line takes. Each of these was a 500; here each is a 422 naming the field and the rule.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from sprongus.domain.errors import ValidationError
from sprongus.domain.text import utf8_encodable

MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEPTH_RULE = f"JSON must nest at most {MAX_DEPTH} levels deep"
INTEGER_RULE = "integers must fit in 64 bits"
TEXT_RULE = "text must be valid UTF-8 (no lone surrogates)"
IDEMPOTENCY_KEY_RULE = "must be 1-255 characters without control characters"
# Only the schemas' own field names are used in error fields: a nested key is the client's text and is not echoed.
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _OutOfRange:
    """Stands in for an integer beyond 64 bits, so the walk can name where it was."""


_OUT_OF_RANGE = _OutOfRange()


def check_request() -> None:
    """Runs after authentication, so a refused token is audited whatever the body holds."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and _CONTROL.search(key):  # NUL cannot be stored in Postgres TEXT (was a 503)
        raise ValidationError("Idempotency-Key", IDEMPOTENCY_KEY_RULE)
    if request.is_json:
        body = request.get_data(cache=True)
        if body:
            check_json(body)


def check_json(body: bytes) -> None:
    try:
        text = body.decode("utf-8")
        document = json.loads(text, parse_int=_int64)
    except RecursionError:  # the C parser gives up near the recursion limit: far deeper than allowed anyway
        raise ValidationError("body", DEPTH_RULE) from None
    except ValueError:  # malformed: the schema's parser answers 400 as for any other malformed body
        return
    _walk(document)


def _int64(digits: str) -> int | _OutOfRange:
    # JSON integers have no leading zeros, so more than 19 digits is out of range without calling int(), which
    # refuses more than 4,300 digits with a ValueError.
    if len(digits.lstrip("-")) > 19:
        return _OUT_OF_RANGE
    number = int(digits)
    return number if INT64_MIN <= number <= INT64_MAX else _OUT_OF_RANGE


def _walk(document: Any) -> None:
    """Depth first, without recursion: (node, depth of its container, field name, may the name grow)."""
    stack: list[tuple[Any, int, str, bool]] = [(document, 0, "body", True)]
    while stack:
        node, depth, field, open_name = stack.pop()
        if isinstance(node, dict | list):
            if depth + 1 > MAX_DEPTH:
                raise ValidationError("body", DEPTH_RULE)
            stack.extend(_children(node, depth + 1, field, open_name))
        elif isinstance(node, str) and not utf8_encodable(node):
            raise ValidationError(field, TEXT_RULE)
        elif node is _OUT_OF_RANGE:
            raise ValidationError(field, INTEGER_RULE)


def _children(node: dict[str, Any] | list[Any], depth: int, field: str,
              open_name: bool) -> list[tuple[Any, int, str, bool]]:
    if isinstance(node, list):
        return [(child, depth, f"{field}[{i}]" if open_name else field, open_name) for i, child in enumerate(node)]
    children = []
    for key, child in node.items():
        if not utf8_encodable(key):
            raise ValidationError(field, TEXT_RULE)
        if depth == 1 and field == "body" and _FIELD.fullmatch(key):
            children.append((child, depth, key, True))  # a top-level field: its name is the schema's
        else:
            children.append((child, depth, field, False))  # deeper keys are the client's: keep the parent's name
    return children

