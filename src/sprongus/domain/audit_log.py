"""The audit trail's hash chain and the checkpoints of its head (docs/design.md#an-audit-trail-you-can-read); the
events as readers get them back are in audit_rows.py.

The chain alone shows an edited, deleted or reordered row, but not its newest rows cut off: it has no key. A
checkpoint records the number of events and the head hash at one seq, MAC'd with a key derived from the vault's
value-HMAC key (which the database roles cannot read), so rows cut off before the newest checkpoint show.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sprongus.domain.text import utf8_encodable
from sprongus.domain.times import utc_iso

GENESIS = "sha256:" + "0" * 64
CHECKPOINT_CONTEXT = b"sprongus.audit-checkpoint.v1"  # domain separation: the value-HMAC key signs nothing else so
CHECKPOINT_EVERY = 1000  # a checkpoint at least every this many events ...
CHECKPOINT_SECONDS = 300.0  # ... or this long after the previous one, whichever comes first


def _length_prefixed(parts: list[bytes]) -> bytes:
    """The envelope's unambiguous encoding (a 4-byte big-endian length, then the bytes), written out here: the
    envelope module imports the ports, which import this one."""
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def chain_hash(prev_hash: str, fields: list[Any]) -> str:
    body = json.dumps([prev_hash, *fields], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def chain_fields(time: datetime, actor: str, action: str, scope: str | None, key_name: str | None,
                 version: int | None, outcome: str, request_id: str | None, client_address: str | None,
                 detail: Any) -> list[Any]:
    """What a row's hash covers, in order (the stored format: `isoformat` with `+00:00`, never changed)."""
    return [time.astimezone(UTC).isoformat(), actor, action, scope, key_name, version, outcome, request_id,
            client_address, detail]


def storable(value: Any) -> Any:
    """Postgres TEXT and JSONB refuse NUL and lone surrogates, and a request path or forwarded address may carry
    them: the denied request's audit row failed, and the answer with it (503). Escaped in every store, so the
    chain hashes exactly what is stored."""
    if isinstance(value, str):
        if "\x00" in value or not utf8_encodable(value):
            return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
        return value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """The chain head at `seq`: `count` events up to and including it, the last of them hashing to `head_hash`.
    `key_id` and `mac` are None when the vault had no value-HMAC key yet (nothing was ever written)."""

    seq: int
    count: int
    head_hash: str
    time: datetime
    key_id: str | None = None
    mac: str | None = None

    def message(self, key_id: str) -> bytes:
        """What the MAC covers: every field but the MAC, unambiguously (length-prefixed)."""
        return _length_prefixed([CHECKPOINT_CONTEXT, key_id.encode(), str(self.seq).encode(),
                                str(self.count).encode(), self.head_hash.encode(), utc_iso(self.time).encode()])

    def signed(self, key_id: str, mac: str) -> AuditCheckpoint:
        return replace(self, key_id=key_id, mac=mac)


class KeyRetired(Exception):
    """A checkpoint's key is out of reach for a legitimate reason (its provider was retired): the signer raises it,
    and the walk of the trail (domain/audit_verify.py) notes the checkpoint as unchecked, not forged."""


def checkpoint_due(known: AuditCheckpoint | None, head_seq: int, now: datetime) -> bool:
    """Whether the events up to `head_seq` (an upper bound: Postgres sequences skip numbers, so this errs early)
    need a checkpoint, given the newest checkpoint this process knows of."""
    if known is None:
        return True
    return head_seq - known.seq >= CHECKPOINT_EVERY or (now - known.time).total_seconds() >= CHECKPOINT_SECONDS
