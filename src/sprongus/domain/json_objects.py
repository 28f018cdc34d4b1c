"""JSON objects that name each member once.

`{"value": "a", "value": "b"}` is the last value to Python's json and the first to some other parsers: one
document, two readings. Both the API's bodies and the CLI's import files refuse it, with `unique_names` as
`object_pairs_hook`.
"""

from __future__ import annotations

from typing import Any


class RepeatedName(Exception):
    """Raised from inside the parser, which would turn a ValueError into "malformed"."""


def unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise RepeatedName
    return document
