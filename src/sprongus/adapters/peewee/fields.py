"""Columns whose storage differs by dialect (docs/design.md#storage): bytes and JSON, timestamps in UTC."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import peewee

from sprongus.adapters.peewee.dialect import dialect_of


class CryptoBytesField(peewee.Field):
    """BYTEA on Postgres, base64 TEXT on SQLite."""

    field_type = "BLOB"

    def db_value(self, value: bytes | None) -> Any:
        if value is None:
            return None
        return dialect_of(self.model._meta.database).bytes_value(value)

    def python_value(self, value: Any) -> bytes | None:
        """Strict: text outside the base64 alphabet raises ValueError (binascii.Error) rather than decoding to
        other bytes, and a stray number is not turned into that many zero bytes."""
        if value is None:
            return None
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise TypeError("a bytes column holds neither base64 text nor bytes")


class MetaField(peewee.Field):
    """JSONB on Postgres, JSON TEXT on SQLite."""

    field_type = "TEXT"

    def db_value(self, value: Any) -> Any:
        return dialect_of(self.model._meta.database).json_value(value if value is not None else {})

    def python_value(self, value: Any) -> Any:
        if value is None:
            return {}
        return json.loads(value) if isinstance(value, str) else value


class UtcDateTimeField(peewee.Field):
    """TIMESTAMPTZ on Postgres, ISO-8601 TEXT with offset on SQLite; always aware UTC in Python."""

    field_type = "TEXT"

    def db_value(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return dialect_of(self.model._meta.database).time_value(value.astimezone(UTC))

    def python_value(self, value: Any) -> datetime | None:
        """A value that is not a timestamp raises ValueError or TypeError (the repository reports the row)."""
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(moment, datetime):
            raise TypeError("a timestamp column holds neither ISO-8601 text nor a timestamp")
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
