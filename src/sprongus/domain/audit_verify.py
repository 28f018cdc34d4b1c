"""Walking the audit trail: the hash chain row by row, and each checkpoint of its head as the walk passes it.

Both adapters feed the same walk (rows and checkpoints in seq order), so they report alike. A row's problems are
the chain's (edited, deleted or reordered); a checkpoint's are rows missing before it (its row gone, or fewer or
more events than it counted), a head rewritten since, and a MAC that does not hold (a forged checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sprongus.domain.audit_log import (
    CHECKPOINT_EVERY,
    GENESIS,
    AuditCheckpoint,
    KeyRetired,
    chain_hash,
)
from sprongus.domain.audit_rows import StoredAuditEvent

# A checkpoint's MAC check: None when it holds, else what is wrong (the key is unknown, the MAC does not match).
# It raises KeyRetired (domain/audit_log.py) when the key belongs to a key provider this vault no longer uses (the
# file provider after a move to a KMS): such a checkpoint cannot be checked, and that is a note, not a forgery.
MacCheck = Callable[[AuditCheckpoint], str | None]


@dataclass(frozen=True, slots=True)
class AuditChainReport:
    """The result of walking the audit hash chain: rows checked and the problems found."""

    checked: int
    problems: list[str]


@dataclass(frozen=True, slots=True)
class AuditTrailReport(AuditChainReport):
    """The chain report (`checked` events, `problems`), and what the checkpoints showed."""

    checkpoints: int = 0
    newest_checkpoint: AuditCheckpoint | None = None
    macs_checked: int = 0
    notes: tuple[str, ...] = ()  # not problems: why something could not be checked


class TrailWalk:
    def __init__(self, check_mac: MacCheck | None, signing_key: str | None) -> None:
        """`check_mac` None: no signer (a trail outside a container); `signing_key`: the id that signs new
        checkpoints now, None when the vault has no value-HMAC key yet."""
        self._check_mac = check_mac
        self._signing_key = signing_key
        self.problems: list[str] = []
        self._count = 0
        self._prev = GENESIS
        self._last_seq = 0
        self._checkpoints = 0
        self._newest: AuditCheckpoint | None = None
        self._signed_seen = False
        self._macs = 0
        self._unsigned = 0
        self._retired = 0

    def row(self, row: StoredAuditEvent) -> None:
        self._count += 1
        if row.prev_hash != self._prev:
            self.problems.append(f"audit row {row.seq}: does not follow the previous row (deleted or reordered)")
        if row.hash != chain_hash(row.prev_hash, row.fields()):
            self.problems.append(f"audit row {row.seq}: contents do not match its hash (edited)")
        self._prev, self._last_seq = row.hash, row.seq

    def checkpoint(self, cp: AuditCheckpoint) -> None:
        """After every row up to `cp.seq` was walked."""
        self._checkpoints += 1
        where = f"audit checkpoint at seq {cp.seq}"
        if self._last_seq != cp.seq:
            self.problems.append(f"{where}: its row is missing (rows deleted): the trail holds {self._count} "
                                 f"events up to it, the checkpoint counted {cp.count}")
        elif self._count != cp.count:
            self.problems.append(f"{where}: counted {cp.count} events up to it, the trail holds {self._count} "
                                 "(rows deleted or inserted before it)")
        elif self._prev != cp.head_hash:
            self.problems.append(f"{where}: its row's hash is not the one checkpointed (rows rewritten)")
        self._check_signature(cp, where)
        self._newest = cp

    def _check_signature(self, cp: AuditCheckpoint, where: str) -> None:
        if cp.key_id is None or cp.mac is None:
            if self._signed_seen:  # keys never go away: once signed, every later checkpoint is
                self.problems.append(f"{where}: not signed, though an earlier checkpoint is (forged checkpoint)")
            self._unsigned += 1
            return
        self._signed_seen = True
        if self._check_mac is None:
            return
        try:
            wrong = self._check_mac(cp)
        except KeyRetired:
            self._retired += 1
            return
        self._macs += 1
        if wrong is not None:
            self.problems.append(f"{where}: {wrong}")

    def report(self) -> AuditTrailReport:
        notes: list[str] = []
        newest = self._newest
        if newest is not None and self._count - newest.count >= CHECKPOINT_EVERY:
            self.problems.append(f"{self._count - newest.count} events after the newest audit checkpoint (seq "
                                 f"{newest.seq}): one is written at least every {CHECKPOINT_EVERY:,} events, so "
                                 "newer checkpoints were deleted (or could not be signed)")
        if self._check_mac is None:
            if self._checkpoints:
                notes.append("checkpoint MACs not checked: no signer is configured")
        elif self._signing_key is None and not self._signed_seen:
            notes.append("the vault has no value-HMAC key yet (no secret written): checkpoints are not signed, "
                         "MACs not checked")
        elif self._unsigned:
            notes.append(f"{self._unsigned} checkpoint(s) from before the vault had a value-HMAC key are not signed")
        if self._retired:
            notes.append(f"{self._retired} checkpoint MAC(s) not checked: signed with keys of a key provider this "
                         "vault no longer uses (their counts and hashes were checked)")
        return AuditTrailReport(self._count, self.problems, self._checkpoints, newest, self._macs, tuple(notes))


def walk(rows: Iterable[StoredAuditEvent], checkpoints: Iterable[AuditCheckpoint], check_mac: MacCheck | None,
         signing_key: str | None) -> AuditTrailReport:
    """Rows and checkpoints, each in seq order (pages of them, as generators: constant memory)."""
    trail = TrailWalk(check_mac, signing_key)
    pending: Iterator[AuditCheckpoint] = iter(checkpoints)
    cp = next(pending, None)
    for row in rows:
        while cp is not None and cp.seq < row.seq:  # its own row is gone: check it on what came before
            trail.checkpoint(cp)
            cp = next(pending, None)
        trail.row(row)
        while cp is not None and cp.seq == row.seq:
            trail.checkpoint(cp)
            cp = next(pending, None)
    while cp is not None:  # checkpoints past the last row: the tail was cut off
        trail.checkpoint(cp)
        cp = next(pending, None)
    return trail.report()
