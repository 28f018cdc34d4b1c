"""What `secrets history` shows and the rules of keeping versions: no values, only numbers, times and authors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sprongus.domain.errors import ValidationError
from sprongus.domain.times import utc_iso_or_none

DEFAULT_MAX_VERSIONS = 10
MAX_MAX_VERSIONS = 1000
DEFAULT_DELETE_RETENTION = timedelta(days=30)
MAX_VERSION_NUMBER = 2**31 - 1  # the column is a 32-bit INTEGER on both dialects


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    created_at: datetime | None
    created_by: str | None
    current: bool

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "createdAt": utc_iso_or_none(self.created_at),
                "createdBy": self.created_by, "current": self.current}


@dataclass(frozen=True, slots=True)
class History:
    """A secret's kept versions, newest first; `deleted_at` is set while the secret is soft-deleted."""

    items: list[VersionInfo]
    deleted_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [item.to_dict() for item in self.items], "deletedAt": utc_iso_or_none(self.deleted_at)}


@dataclass
class PurgeReport:
    """What a purge destroyed: secrets and the versions they held."""

    secrets: int = 0
    versions: int = 0


def validate_version(value: object, field: str = "version") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION_NUMBER:
        raise ValidationError(field, f"must be an integer between 1 and {MAX_VERSION_NUMBER}")
    return value


def oldest_kept(latest: int, max_versions: int) -> int:
    """The lowest version number a secret keeps once `latest` is written: `max_versions` of them, current included."""
    return max(1, latest - max_versions + 1)
