"""What the rarer use cases answer: batch reveals, imports, exports, rotations, verification, minted reveal tokens
and the master keys' states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sprongus.domain.records import SecretView
from sprongus.domain.values import SecretValue


class RevealedSecret(NamedTuple):
    key: str
    value: SecretValue
    version: int


@dataclass(frozen=True, slots=True)
class BatchReveal:
    """A batch reveal: the revealed secrets by key name, and the requested keys that answered nothing (absent, or
    outside the caller's key prefix: the two look the same)."""

    items: list[RevealedSecret]
    missing: list[str]


@dataclass
class ImportReport:
    """(scope, key) pairs per kind of change; a dry run fills them without writing."""

    added: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The secrets an export covered, and the encrypted bundle when one was asked for."""

    items: list[SecretView]
    bundle: dict[str, Any] | None = None


@dataclass
class RotationReport:
    """Counts only: a bulk rotation's memory must not grow with the number of secrets."""

    rotated: int = 0
    skipped: int = 0
    hmac_keys_damaged: int = 0  # rotate_master: the vault's HMAC key records that did not open, left as they were


@dataclass
class VerifyReport:
    """What `keys verify` checked, and every failure it found."""

    checked: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (scope, key, reason)
    audit_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.audit_problems


@dataclass(frozen=True, slots=True)
class RevealTokenMinted:
    """A single-use reveal token, shown once; only its hash is kept."""

    token: str = field(repr=False)  # a bearer credential: never in a log line or traceback
    expires_at: str = ""


@dataclass(frozen=True)
class KeyState:
    """One master key as `keys status` reports it."""

    key_id: str
    state: str  # "current", "opens", "not available"
    hmac_keys: int  # the vault's HMAC keys this master key wraps: it must stay until `keys rotate-master`
