"""Key names, key-name prefixes and version numbers, and how many versions are kept (docs/design.md#names-and-limits).
Key names are not secret and may be logged."""

from __future__ import annotations

import re
from datetime import timedelta

from sprongus.domain.errors import ValidationError

KEY_NAME_RULE = "1-128 chars matching ^[A-Za-z][A-Za-z0-9_-]*(\\.[A-Za-z0-9_-]+)*$"
# The same rule in words, for people at the CLI. API answers keep KEY_NAME_RULE: clients and docs quote the regex.
KEY_NAME_WORDS = ("a key name starts with a letter and holds letters, digits, '_' and '-', in parts joined by '.'; "
                  "at most 128 characters")
PREFIX_RULE = "at most 128 chars of [A-Za-z0-9._-], starting with a letter"
_KEY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
MAX_KEY_NAME = 128


def validate_key_name(name: object, field: str = "key") -> str:
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME or not _KEY_NAME.fullmatch(name):
        raise ValidationError(field, KEY_NAME_RULE)
    return name


def validate_prefix(prefix: object, field: str = "prefix") -> str:
    """A prefix filters key names; empty means no filter."""
    if prefix is None or prefix == "":
        return ""
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_NAME or not _PREFIX.fullmatch(prefix):
        raise ValidationError(field, PREFIX_RULE)
    return prefix


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
