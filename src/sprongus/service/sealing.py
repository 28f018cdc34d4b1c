"""Turns values into stored records and back: a fresh DEK and nonce per version, the AAD bound to the version."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sprongus.domain.envelope import Envelope, Sealed, aad_for, checksum
from sprongus.domain.errors import IntegrityError, ValidationError
from sprongus.domain.meta import MetaValue
from sprongus.domain.names import MAX_VERSION_NUMBER
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import Clock
from sprongus.ports.crypto import MapFn
from sprongus.ports.random import RandomSource
from sprongus.service.vault_keys import VaultKeys

if TYPE_CHECKING:  # an import's: loaded with it
    from sprongus.domain.import_item import SealJob


def sealed_of(record: SecretRecord) -> Sealed:
    """The crypto fields of a record; a row that did not decode has none to give."""
    if record.defect:
        raise IntegrityError()
    return Sealed(record.ciphertext, record.dek_wrapped, record.nonce, record.alg, record.master_key_id, record.hmac)


@dataclass(frozen=True)
class SealedAhead:
    """A value sealed before its write transaction opened, for the version that was current then (`seal_ahead`)."""

    sealed: Sealed
    aad: bytes


class Sealer:
    def __init__(self, envelope: Envelope, clock: Clock, random: RandomSource,
                 vault_keys: VaultKeys | None = None) -> None:
        self.envelope = envelope
        self._clock = clock
        self._random = random
        self.vault_keys = vault_keys

    def before_write(self, fresh: bool = False) -> None:
        """The master key must match the vault before anything is sealed for it (see VaultKeys).

        Every write use case calls it first, outside any transaction: the key records it may add must commit on
        their own, never roll back with a write that lost a race while this process keeps using the key."""
        if self.vault_keys is not None:
            self.vault_keys.before_write(fresh)

    def new_id(self) -> str:
        return str(uuid.UUID(bytes=self._random.bytes(16), version=4))

    def confirm(self, master_key_id: str) -> None:
        """The key that just sealed or wrapped is the one checked against the vault (see VaultKeys.confirm)."""
        if self.vault_keys is not None:
            self.vault_keys.confirm(master_key_id)

    def _is_checked(self, master_key_id: str) -> bool:
        return self.vault_keys is None or self.vault_keys.is_checked(master_key_id)

    def usable_early(self, master_key_ids: list[str]) -> bool:
        """Versions sealed before their transaction may be stored: this process still seals with their key."""
        return all(self._is_checked(key_id) for key_id in master_key_ids)

    def before_key_use(self) -> None:
        """Before the master key wraps a bundle key or a reveal grant: it matches the vault (and is never made)."""
        if self.vault_keys is not None:
            self.vault_keys.before_key_use()

    def seal_ahead(self, previous: SecretRecord | None, scope: Scope, key: str, value: SecretValue,
                   after_version: int = 0) -> SealedAhead:
        """The data key made and wrapped (with a KMS, its round trip) for the version after `previous`, before the
        write transaction: `seal(..., ahead=)` then uses it if that is still the next version."""
        aad = aad_for(scope, key, self._next_version(previous, after_version))
        return SealedAhead(self.envelope.seal(value, aad), aad)

    def seal(self, previous: SecretRecord | None, scope: Scope, key: str, value: SecretValue,
             meta: dict[str, MetaValue] | None, *, rotated: bool = False, after_version: int = 0,
             by: str | None = None, ahead: SealedAhead | None = None) -> SecretRecord:
        """A new version of (scope, key): version+1, meta kept unless given, timestamps carried over, live again
        if it was deleted. A new secret starts after `after_version` (the last number a purged one used).

        `ahead`: the value sealed before the transaction. Its AAD names scope, key and version, so it is used only
        for that version, and only under the key this process still uses: if another write took the number, or
        the process adopted a newer master key meanwhile, the value is sealed again here."""
        version = self._next_version(previous, after_version)
        aad = aad_for(scope, key, version)
        if ahead is not None and ahead.aad == aad and self._is_checked(ahead.sealed.master_key_id):
            sealed = ahead.sealed
        else:
            sealed = self.envelope.seal(value, aad)
        self.confirm(sealed.master_key_id)
        return self._record(previous, scope, key, meta, version, sealed, aad, rotated, by)

    def seal_many(self, jobs: Sequence[SealJob], map: MapFn) -> list[SecretRecord]:
        """`seal` of many new versions (rotated=False), their DEKs wrapped in bulk where the master key can (an
        import): one transit batch per chunk instead of one call per version."""
        versions = [self._next_version(job.previous, job.after_version) for job in jobs]
        aads = [aad_for(job.scope, job.key, version) for job, version in zip(jobs, versions, strict=True)]
        sealed = self.envelope.seal_many([(job.value, aad) for job, aad in zip(jobs, aads, strict=True)], map)
        for key_id in {s.master_key_id for s in sealed}:
            self.confirm(key_id)
        return [self._record(job.previous, job.scope, job.key, job.meta, version, one, aad, False, job.by)
                for job, version, one, aad in zip(jobs, versions, sealed, aads, strict=True)]

    @staticmethod
    def _next_version(previous: SecretRecord | None, after_version: int) -> int:
        if previous is not None and previous.defect:  # its version, times and meta are placeholders
            raise IntegrityError()
        version = (after_version if previous is None else previous.version) + 1
        if version > MAX_VERSION_NUMBER:  # a bundle's history may carry any number: refused, not a database error
            raise ValidationError("version", f"this secret has used every version number up to {MAX_VERSION_NUMBER}")
        return version

    def _record(self, previous: SecretRecord | None, scope: Scope, key: str, meta: dict[str, MetaValue] | None,
                version: int, sealed: Sealed, aad: bytes, rotated: bool, by: str | None) -> SecretRecord:
        now = self._clock.now()
        return SecretRecord(
            id=previous.id if previous else self.new_id(),
            scope=scope, key=key, ciphertext=sealed.ciphertext, dek_wrapped=sealed.dek_wrapped,
            nonce=sealed.nonce, alg=sealed.alg, master_key_id=sealed.master_key_id, version=version,
            created_at=previous.created_at if previous else now, updated_at=now,
            last_rotated_at=now if rotated else (previous.last_rotated_at if previous else None),
            meta=dict(meta) if meta is not None else (dict(previous.meta) if previous else {}),
            hmac=sealed.hmac, checksum=checksum(sealed, aad), version_by=by,
        )

    def open(self, record: SecretRecord) -> SecretValue:
        return self.envelope.open(sealed_of(record), aad_for(record.scope, record.key, record.version))

    def reseal(self, record: SecretRecord) -> SecretRecord:
        """The same version under a fresh DEK and nonce (same number, same AAD): per-secret rotation of a kept
        version."""
        aad = aad_for(record.scope, record.key, record.version)
        sealed = self.envelope.seal(self.open(record), aad)
        self.confirm(sealed.master_key_id)
        return replace(record, ciphertext=sealed.ciphertext, dek_wrapped=sealed.dek_wrapped, nonce=sealed.nonce,
                       alg=sealed.alg, master_key_id=sealed.master_key_id, hmac=sealed.hmac,
                       checksum=checksum(sealed, aad), last_rotated_at=self._clock.now())
