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
from werkzeug.exceptions import RequestEntityTooLarge

from sprongus.domain.errors import ValidationError
from sprongus.domain.json_objects import RepeatedName, unique_names
from sprongus.domain.principal import Permission
from sprongus.domain.text import utf8_encodable
from sprongus.entrypoints.api.context import principal
from sprongus.entrypoints.api.schemas import QUERY_NAMES

MAX_DEPTH = 32
# Every body but an import's holds one value (64 KiB, at most 6x that as JSON escapes) or at most 1,000 key names:
# 1 MiB is the app's limit, for the anonymous token endpoint too. An import of 5,000 items may send 32 MiB, once
# its token is known to write (any other is refused the import anyway, so it does not get 32 MiB parsed first). A
# body over its limit is a 413 before it is read.
SMALL_BODY = 1024 * 1024
LARGE_BODY = 32 * 1024 * 1024
LARGE_BODY_ENDPOINTS = frozenset({"secrets.import_secrets"})
# A redeem, the one JSON endpoint anyone may call, holds a token of 48 characters: 4 KiB is plenty, and nobody
# gets to have a megabyte parsed before the redeem limit is counted.
TINY_BODY = 4096
TINY_BODY_ENDPOINTS = frozenset({"secrets.redeem"})
BODY_SIZE_RULE = "a request body must be at most 1 MiB (a redeem: 4 KiB; an import by a token that may write: 32 MiB)"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEPTH_RULE = f"JSON must nest at most {MAX_DEPTH} levels deep"
INTEGER_RULE = "integers must fit in 64 bits"
TEXT_RULE = "text must be valid UTF-8 (no lone surrogates)"
IDEMPOTENCY_KEY_RULE = "must be 1-255 characters without control characters"
ONCE_RULE = "give it at most once"
UNIQUE_NAMES_RULE = "a JSON object must not repeat a name"
# Only the schemas' own field names are used in error fields: a nested key is the client's text and is not echoed.
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the text must show before a value can break a rule: an integer of 19 digits or more, or a \uD800-\uDFFF
# escape (a body that decodes as UTF-8 holds no surrogate otherwise). Both may also match inside a string; then
# every value is looked at, as before. Without either, only the containers are walked, for their depth: a body of
# two million list items took 1.4 s to walk value by value, from any token, before any permission was checked.
_LONG_NUMBER = re.compile(r"[0-9]{19}")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CONTAINERS = (dict, list)


class _OutOfRange:
    """Stands in for an integer beyond 64 bits, so the walk can name where it was."""


_OUT_OF_RANGE = _OutOfRange()


def check_request() -> None:
    """Runs after authentication, so a refused token is audited whatever the body holds."""
    if request.endpoint in TINY_BODY_ENDPOINTS:
        request.max_content_length = TINY_BODY
    elif request.endpoint in LARGE_BODY_ENDPOINTS and principal().has(Permission.WRITE):
        request.max_content_length = LARGE_BODY
    _check_query_once()
    _check_unsized_body()
    key = request.headers.get("Idempotency-Key")
    if key is not None and _CONTROL.search(key):  # NUL cannot be stored in Postgres TEXT (was a 503)
        raise ValidationError("Idempotency-Key", IDEMPOTENCY_KEY_RULE)
    if request.is_json:
        body = request.get_data(cache=True)
        if body:
            check_json(body)


def _check_query_once() -> None:
    """webargs keeps the first of a repeated query parameter and drops the rest: `?purge=false&purge=true` was a
    soft delete, `?bundle=false&bundle=true` a metadata export, while a proxy or a log reading the last value saw
    the other request. A second spelling of one request is a 422, as for every /v1/audit filter."""
    for name, values in request.args.lists():
        if len(values) > 1:
            raise ValidationError(name if name in QUERY_NAMES else "query", ONCE_RULE)


def _check_unsized_body() -> None:
    """A body sent without Content-Length (chunked) is read up to the limit and no further: werkzeug answers 413
    only on a read past it, which nothing makes, so the first megabyte of a longer body was used as the whole
    while a proxy in front saw the rest. Read now, so a body that reaches the limit is refused. Only a body sent
    with Transfer-Encoding has no length: every other request (a masked GET, the hot path) reads nothing here."""
    if request.content_length is not None or "Transfer-Encoding" not in request.headers \
            or request.max_content_length is None:
        return
    if len(request.get_data(cache=True)) >= request.max_content_length:
        raise RequestEntityTooLarge()


def check_json(body: bytes) -> None:
    try:
        text = body.decode("utf-8")
        long_numbers = _LONG_NUMBER.search(text) is not None
        document = json.loads(text, parse_int=_int64 if long_numbers else None, object_pairs_hook=unique_names)
    except RecursionError:  # the C parser gives up near the recursion limit: far deeper than allowed anyway
        raise ValidationError("body", DEPTH_RULE) from None
    except RepeatedName:  # 2 us per small body, 3 ms for an import of 5,000 items
        raise ValidationError("body", UNIQUE_NAMES_RULE) from None
    except ValueError:  # malformed: the schema's parser answers 400 as for any other malformed body
        return
    if long_numbers or _SURROGATE_ESCAPE.search(text):
        _walk(document)
    else:
        _check_depth(document)


def _int64(digits: str) -> int | _OutOfRange:
    # JSON integers have no leading zeros, so more than 19 digits is out of range without calling int(), which
    # refuses more than 4,300 digits with a ValueError.
    if len(digits.lstrip("-")) > 19:
        return _OUT_OF_RANGE
    number = int(digits)
    return number if INT64_MIN <= number <= INT64_MAX else _OUT_OF_RANGE


def _check_depth(document: Any) -> None:
    """The depth rule alone, level by level. Only non-empty containers are kept for the next level: an empty one
    adds a level but holds nothing, and a megabyte of `{},` is 350,000 of them (0.13 s when each was visited)."""
    level = [document] if isinstance(document, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise ValidationError("body", DEPTH_RULE)
        below: list[Any] = []
        deeper = False
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, _CONTAINERS):
                    deeper = True
                    if child:
                        below.append(child)
        if deeper and not below and depth + 1 > MAX_DEPTH:  # only empty containers one level further down
            raise ValidationError("body", DEPTH_RULE)
        level = below


def _walk(document: Any) -> None:
    """Every value, depth first, without recursion: (node, depth of its container, field name, may the name grow).
    A list item's name is only written out for an item that is itself a container or breaks a rule."""
    if not isinstance(document, _CONTAINERS):
        _check_value(document, "body")
        return
    stack: list[tuple[Any, int, str, bool]] = [(document, 0, "body", True)]
    while stack:
        node, depth, field, open_name = stack.pop()
        if depth + 1 > MAX_DEPTH:
            raise ValidationError("body", DEPTH_RULE)
        if isinstance(node, list):
            for index, child in enumerate(node):
                if isinstance(child, _CONTAINERS):
                    stack.append((child, depth + 1, f"{field}[{index}]" if open_name else field, open_name))
                else:
                    _check_value(child, f"{field}[{index}]" if open_name else field)
            continue
        for key, child in node.items():
            if not utf8_encodable(key):
                raise ValidationError(field, TEXT_RULE)
            # A top-level field's name is the schema's; deeper keys are the client's: keep the parent's name.
            named = depth == 0 and field == "body" and _FIELD.fullmatch(key) is not None
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1, key if named else field, named))
            else:
                _check_value(child, key if named else field)


def _check_value(value: Any, field: str) -> None:
    if value is _OUT_OF_RANGE:
        raise ValidationError(field, INTEGER_RULE)
    if isinstance(value, str) and not utf8_encodable(value):
        raise ValidationError(field, TEXT_RULE)
