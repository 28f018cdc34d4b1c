"""The records the service stores and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sprongus.domain.meta import MetaValue
from sprongus.domain.scope import Scope
from sprongus.domain.times import utc_iso_or_none
from sprongus.domain.values import MASK, SecretValue


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One stored secret: the current version of (scope, key), encrypted. Holds no plaintext."""

    id: str
    scope: Scope
    key: str
    ciphertext: bytes
    dek_wrapped: bytes
    nonce: bytes
    alg: str
    master_key_id: str
    version: int
    created_at: datetime
    updated_at: datetime
    last_rotated_at: datetime | None
    meta: dict[str, MetaValue]
    hmac: str | None
    checksum: str
    # The stored columns that did not decode (corrupt base64, a bad timestamp, meta that is not an object).
    # Such a row still has its place and name, so a listing shows it and `verify` reports it, but its other fields
    # are placeholders: every use of its content raises IntegrityError instead.
    defect: tuple[str, ...] = ()
    # Soft delete: the secret answers "not found" but keeps every version until restored or purged.
    deleted_at: datetime | None = None
    # Who wrote this version (a principal's name); None for versions written before versions were kept.
    version_by: str | None = None

    def __repr__(self) -> str:
        # Ciphertext is not plaintext, but there is no reason to put it in logs either.
        return f"SecretRecord(scope='{self.scope}', key='{self.key}', version={self.version}, alg='{self.alg}')"


@dataclass(frozen=True, slots=True)
class SecretView:
    """What callers see: masked unless `value` was explicitly revealed.

    A `damaged` view stands for a stored row that does not decode: only its place and name are real (times
    None, version 0, meta empty).
    """

    scope: Scope
    key: str
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    last_rotated_at: datetime | None
    meta: dict[str, MetaValue]
    master_key_id: str
    value: SecretValue | None = None
    damaged: bool = False
    deleted_at: datetime | None = None

    @property
    def masked(self) -> bool:
        return self.value is None

    def to_dict(self, *, with_meta: bool = True) -> dict[str, Any]:
        """JSON-ready form shared by the CLI and the API. Plaintext appears only for a revealed view."""
        data: dict[str, Any] = {
            "ownerType": self.scope.owner_type.value,
            "ownerId": self.scope.owner_id,
            "scope": str(self.scope),
            "keyName": self.key,
            "value": MASK if self.value is None else self.value.reveal(),
            "masked": self.value is None,
            "version": self.version,
            "createdAt": utc_iso_or_none(self.created_at),
            "updatedAt": utc_iso_or_none(self.updated_at),
            "lastRotatedAt": utc_iso_or_none(self.last_rotated_at),
        }
        if with_meta:
            data["meta"] = dict(self.meta)
        if self.damaged:
            data["damaged"] = True
        if self.deleted_at is not None:
            data["deletedAt"] = utc_iso_or_none(self.deleted_at)
        return data


def view_of(record: SecretRecord, value: SecretValue | None = None) -> SecretView:
    if record.defect:
        return SecretView(record.scope, record.key, 0, None, None, None, {}, "", None, damaged=True)
    return SecretView(record.scope, record.key, record.version, record.created_at, record.updated_at,
                      record.last_rotated_at, dict(record.meta), record.master_key_id, value,
                      deleted_at=record.deleted_at)


class AuditAction(StrEnum):
    AUTHENTICATE = "authenticate"
    CREATE = "create"
    UPDATE = "update"
    READ = "read"
    REVEAL = "reveal"
    REDEEM = "redeem"
    DELETE = "delete"
    LIST = "list"
    ROTATE = "rotate"
    ROTATE_MASTER = "rotate_master"
    IMPORT = "import"
    EXPORT = "export"
    VERIFY = "verify"
    EXCHANGE = "exchange"
    REVOKE = "revoke"
    ROLLBACK = "rollback"
    RESTORE = "restore"
    PURGE = "purge"
    DESTROY = "destroy"  # one per version destroyed (retention, purge, expiry): names it, never its value


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    INTEGRITY_ERROR = "integrity_error"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited action. Never carries a value: only names, versions and outcomes."""

    time: datetime
    actor: str
    action: AuditAction
    scope: str | None
    key_name: str | None
    version: int | None
    outcome: Outcome
    request_id: str | None = None
    client_address: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, and the cursor of the next (None on the last page)."""

    items: list[SecretView]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SetResult:
    """What a write stored, and whether it created the secret."""

    view: SecretView
    created: bool
