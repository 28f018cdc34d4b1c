"""The rules of keeping versions: how many, for how long, and which numbers are valid. Apart from domain/history.py
(what `secrets history` shows), so that a command that only reads or writes a secret loads no history records."""

from __future__ import annotations

from datetime import timedelta

from sprongus.domain.errors import ValidationError

DEFAULT_MAX_VERSIONS = 10
MAX_MAX_VERSIONS = 1000
DEFAULT_DELETE_RETENTION = timedelta(days=30)
MAX_VERSION_NUMBER = 2**31 - 1  # the column is a 32-bit INTEGER on both dialects


def validate_version(value: object, field: str = "version") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION_NUMBER:
        raise ValidationError(field, f"must be an integer between 1 and {MAX_VERSION_NUMBER}")
    return value


def oldest_kept(latest: int, max_versions: int) -> int:
    """The lowest version number a secret keeps once `latest` is written: `max_versions` of them, current included."""
    return max(1, latest - max_versions + 1)
