"""The one wire format for instants: ISO 8601 in UTC with microseconds and a `Z`."""

from __future__ import annotations

from datetime import datetime


def utc_iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment)
