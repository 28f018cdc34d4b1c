"""The one output format for instants: RFC 3339 in UTC with microseconds and a `Z`, `2026-01-01T00:00:00.000000Z`.

Every time a user or a client sees (CLI tables and --json, API bodies, bundles, audit details) goes through
`utc_iso`, so no answer carries `+00:00` or a local offset. Stored formats are not this module's business: the
database columns and the audit chain's hash input keep their own (changing them would break existing rows).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(moment: datetime) -> str:
    """A naive datetime is taken as UTC (the stores hand back aware UTC; a naive one is a test's)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment)
