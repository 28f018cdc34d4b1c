"""Checkpoints of the audit chain head (`audit_checkpoint`), written in the transaction of the event that makes one
due, and read back by `audit verify`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sprongus.adapters.peewee.db import storage_errors
from sprongus.adapters.peewee.models import AuditCheckpointRow, BoundModels
from sprongus.domain.audit_log import AuditCheckpoint, checkpoint_due
from sprongus.ports.audit import CheckpointSigner

log = logging.getLogger("sprongus.audit")
BASE_SEARCH = 50  # earlier checkpoints tried when the newest is not the vault's own: then every event is counted
SIGN_RETRY = timedelta(seconds=60)  # after a key provider failed to sign: events meanwhile do not wait on it again


class PeeweeCheckpoints:
    def __init__(self, models: BoundModels) -> None:
        self._models = models
        self._db = models.db
        self.signer: CheckpointSigner | None = None
        # The newest checkpoint this process has read from the database (never one it wrote: that one's transaction
        # may still roll back). Between checkpoints, deciding costs no query.
        self._known: AuditCheckpoint | None = None
        self._loaded = False
        self._sign_again_at: datetime | None = None

    @property
    def _m(self) -> type[AuditCheckpointRow]:  # bound on first use (models.py)
        return self._models.audit_checkpoint

    def after_append(self, head_bound: int, head_hash: str, now: datetime) -> None:
        """In the append's transaction, under the chain lock, after its rows were inserted. `head_bound`: the seq
        of the last row, or more (Postgres sequences skip numbers), so a checkpoint is never late."""
        if not self._loaded:
            self._known, self._loaded = self._newest(), True
        if not checkpoint_due(self._known, head_bound, now):
            return
        self._known = newest = self._newest()  # another process may have written one meanwhile
        if not checkpoint_due(newest, head_bound, now):
            return
        if self._sign_again_at is not None and now < self._sign_again_at:
            return
        db = self._db
        since, counted = self._base(newest)
        seq, added = db.execute_sql(  # type: ignore[no-untyped-call]
            f"SELECT max(seq), count(*) FROM audit_event WHERE seq > {db.param}", (since,)).fetchone()  # noqa: S608
        if seq is None:  # the newest checkpoint names a seq past every row: forged; `audit verify` reports it
            return
        checkpoint = AuditCheckpoint(int(seq), counted + int(added), head_hash, now)
        if self.signer is not None:
            try:
                checkpoint = self.signer.sign(checkpoint)
            except Exception as exc:  # the event is still recorded; the next one after SIGN_RETRY tries again
                log.warning("audit checkpoint not written: it could not be signed (%s)", type(exc).__name__)
                self._sign_again_at = now + SIGN_RETRY
                return
        self._sign_again_at = None
        m = self._m
        m.insert(seq=checkpoint.seq, count=checkpoint.count, head_hash=checkpoint.head_hash, time=checkpoint.time,
                 key_id=checkpoint.key_id, mac=checkpoint.mac).execute()

    def _base(self, newest: AuditCheckpoint | None) -> tuple[int, int]:
        """(seq, count) the next checkpoint counts on: the newest checkpoint, if it is this vault's own (its MAC
        checks, or nothing signs yet), else the newest of the last BASE_SEARCH that is, else none (every event is
        counted). A checkpoint the app role inserted with a made-up count was built on by every signed one after it,
        so verify reported each of those too."""
        if newest is None or self.signer is None or self.signer.signing_key() is None or self._own(newest):
            return (0, 0) if newest is None else (newest.seq, newest.count)
        m = self._m
        for row in m.select().where(m.seq < newest.seq).order_by(m.seq.desc()).limit(BASE_SEARCH):
            if self._own(earlier := _checkpoint(row)):
                return earlier.seq, earlier.count
        return 0, 0

    def _own(self, checkpoint: AuditCheckpoint) -> bool:
        assert self.signer is not None
        try:
            return self.signer.check(checkpoint) is None
        except Exception:  # KeyRetired, or a key that will not open: not one to count on
            return False

    def _newest(self) -> AuditCheckpoint | None:
        m = self._m
        row = m.select().order_by(m.seq.desc()).first()
        return None if row is None else _checkpoint(row)

    def newest(self) -> AuditCheckpoint | None:
        with storage_errors():
            return self._newest()

    def pages(self, batch: int) -> Iterator[AuditCheckpoint]:
        """Every checkpoint by seq, read a page at a time."""
        m, after = self._m, -1
        while True:
            with storage_errors():
                rows = list(m.select().where(m.seq > after).order_by(m.seq).limit(batch))
            for row in rows:
                yield _checkpoint(row)
                after = row.seq
            if len(rows) < batch:
                return


def _checkpoint(row: Any) -> AuditCheckpoint:
    return AuditCheckpoint(row.seq, row.count, row.head_hash, row.time, row.key_id, row.mac)
