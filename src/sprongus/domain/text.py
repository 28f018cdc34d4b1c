"""Text rules shared by every layer that stores or checks client text."""

from __future__ import annotations


def utf8_encodable(text: str) -> bool:
    """False for lone surrogates (JSON's `\\ud800` escapes decode to them), which no UTF-8 store can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
