"""The audit trail as its readers get it back: each event with its place in the hash chain (audit_log.py), and the
filters they ask with. Apart from the chain's rules: appending an event (every reveal, every write) builds none of
these, so a command that only appends does not load them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sprongus.domain.audit_log import chain_fields
from sprongus.domain.times import utc_iso


@dataclass(frozen=True, slots=True)
class StoredAuditEvent:
    """One row of the trail. Names keys, never values (no event ever carried one)."""

    seq: int
    time: datetime
    actor: str
    action: str
    scope: str | None
    key_name: str | None
    version: int | None
    outcome: str
    request_id: str | None
    client_address: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def fields(self) -> list[Any]:
        return chain_fields(self.time, self.actor, self.action, self.scope, self.key_name, self.version,
                            self.outcome, self.request_id, self.client_address, self.detail)

    def to_dict(self, chain: bool = True) -> dict[str, Any]:
        """The one JSON shape of an event: `audit list --json`, `audit export` lines and GET /v1/audit items.

        `chain=False` (a tenant's view) gives `prevHash` and `hash` as null. A row's hashes chain through the rows
        between the ones a tenant may see: with a hidden row's two neighbours, its hash tests guesses of its fields
        (time to the microsecond between two known times, actor, scope, key name; request id and client address
        empty for a CLI's direct write): another tenant's key names, confirmed offline. A partial view cannot be
        checked against the chain anyway; `sprongus audit verify` checks the whole of it."""
        hashes = {"prevHash": self.prev_hash, "hash": self.hash} if chain else {"prevHash": None, "hash": None}
        return {"seq": self.seq, "time": utc_iso(self.time), "actor": self.actor, "action": self.action,
                "scope": self.scope, "keyName": self.key_name, "version": self.version, "outcome": self.outcome,
                "requestId": self.request_id, "clientAddress": self.client_address, "detail": self.detail,
                **hashes}


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events a reader sees. `scopes` None: every scope, NULL included (the vault's owner); otherwise only
    rows whose scope is one of these (a tenant: `system` and its projects; never NULL or `user:*`)."""

    scopes: tuple[str, ...] | None = None
    key: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    key_prefix: str = ""  # a token's key prefix: only events naming a key under it

    def matches(self, event: StoredAuditEvent) -> bool:
        """The same rule the SQL adapter writes as a WHERE clause (the in-memory trail filters with it)."""
        return ((self.scopes is None or event.scope in self.scopes)
                and (self.key is None or event.key_name == self.key)
                and (self.actor is None or event.actor == self.actor)
                and (self.action is None or event.action == self.action)
                and (self.since is None or event.time >= self.since)
                and (self.until is None or event.time < self.until)
                and (not self.key_prefix
                     or (event.key_name is not None and event.key_name.startswith(self.key_prefix))))
