"""What the client answers for masked reads and writes: a secret's facts, never its value."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sprongus.adapters.http_client import view_from_dict
from sprongus.domain.meta import MetaValue


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """A stored secret, masked: where it is, its version, times and tags.

    `created` is set by `Client.set()` only: True when the call created the secret (HTTP 201), False when it wrote
    a new version of an existing one (200). `get()` and `list()` answer False.
    """

    scope: str
    key: str
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    last_rotated_at: datetime | None
    meta: dict[str, MetaValue] = field(default_factory=dict)
    created: bool = False

    @classmethod
    def from_api(cls, data: dict[str, Any], created: bool = False) -> SecretInfo:
        """From the API's masked record (the shared reader of adapters/http_client.py parses it)."""
        view = view_from_dict({**data, "value": "********", "masked": True})
        return cls(str(view.scope), view.key, view.version, view.created_at, view.updated_at, view.last_rotated_at,
                   dict(view.meta), created)
