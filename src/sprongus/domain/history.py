"""What `secrets history` shows: no values, only numbers, times and authors (the rules of keeping versions are in
domain/names.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sprongus.domain.times import utc_iso_or_none


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One kept version of a secret, without its value."""

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
