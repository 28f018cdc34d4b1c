"""The audit readers' input, as text from a command line or a query string, checked before anything is read.

Each rule names its field and never repeats the input (an answer or an error line is no echo chamber).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sprongus.domain.errors import ValidationError
from sprongus.domain.names import validate_key_name
from sprongus.domain.records import AuditAction
from sprongus.domain.scope import Scope

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
MAX_ACTOR = 256
_CURSOR_PREFIX = "a1:"
_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TIME_RULE = "must be an RFC 3339 time (2026-01-01T00:00:00Z; no offset means UTC) or an age such as 30m, 12h, 7d"


@dataclass(frozen=True)
class AuditQuery:
    """Filters as given (text, or None when not given)."""

    scope: str | None = None
    key: str | None = None
    actor: str | None = None
    action: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class CheckedQuery:
    scope: str | None
    key: str | None
    actor: str | None
    action: str | None
    since: datetime | None
    until: datetime | None


def check_query(query: AuditQuery, now: datetime) -> CheckedQuery:
    scope = None if query.scope is None else str(Scope.parse(query.scope))
    key = None if query.key is None else validate_key_name(query.key, "key")
    if query.actor is not None and (not 0 < len(query.actor) <= MAX_ACTOR or _CONTROL.search(query.actor)):
        raise ValidationError("actor", f"must be 1-{MAX_ACTOR} characters without control characters")
    actions = [a.value for a in AuditAction]  # the enum decides: a new action is a valid filter at once
    if query.action is not None and query.action not in actions:
        raise ValidationError("action", "must be one of " + ", ".join(actions))
    since = parse_time(query.since, now, "since")
    until = parse_time(query.until, now, "until")
    if since is not None and until is not None and until <= since:
        raise ValidationError("until", "must be later than since")
    return CheckedQuery(scope, key, query.actor, query.action, since, until)


def parse_time(text: str | None, now: datetime, field: str) -> datetime | None:
    if text is None:
        return None
    text = text.strip()
    age = _DURATION.fullmatch(text)
    # OverflowError too: an age like 999999999d, or 0001-01-01T00:00:00+01:00 / 9999-12-31T23:59:59-01:00, lands
    # outside datetime's range once subtracted or moved to UTC; it is bad input (422), not a server fault (500).
    try:
        if age:
            return now - timedelta(seconds=int(age.group(1)) * _UNITS[age.group(2)])
        if not text.isascii() or len(text) > 40 or not text[:4].isdigit():
            raise ValidationError(field, TIME_RULE)
        moment = datetime.fromisoformat(text)
        return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError(field, TIME_RULE) from None


def check_limit(limit: int | str | None, maximum: int = MAX_LIMIT) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, str):
        if not limit.isascii() or not limit.isdigit() or len(limit) > 6:
            raise ValidationError("limit", f"must be a whole number from 1 to {maximum}")
        limit = int(limit)
    if not 1 <= limit <= maximum:
        raise ValidationError("limit", f"must be a whole number from 1 to {maximum}")
    return limit


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """Opaque to clients: unpadded base64url of `a1:<seq>` (keyset on seq)."""
    if cursor is None:
        return None
    rule = "must be a nextCursor from a previous page"
    if not cursor.isascii() or not 0 < len(cursor) <= 64:
        raise ValidationError("cursor", rule)
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise ValidationError("cursor", rule) from None
    seq = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not seq.isdigit() or not 0 < int(seq) < 2**63:
        raise ValidationError("cursor", rule)
    return int(seq)
