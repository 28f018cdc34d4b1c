"""Text rules shared by every layer that stores or checks client text."""

from __future__ import annotations


def utf8_encodable(text: str) -> bool:
    """False for lone surrogates (JSON's `\\ud800` escapes decode to them), which no UTF-8 store can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def one_printable_line(text: str) -> str:
    """`text` with every character that is not printable written as its escape (`\\x1b`, `\\n`, `\\u202e`): what an
    error line repeats can move no cursor, recolour nothing, write no clipboard (OSC 52) and start no new line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
