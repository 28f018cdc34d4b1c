"""Real services on real databases: the container built from settings, as `sprongus` itself builds it."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee

from sprongus.adapters.peewee.audit import PeeweeAuditSink
from sprongus.adapters.peewee.models import BoundModels
from sprongus.domain.principal import Permission, Principal
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container, build_container
from sprongus.service.rotation import RotationOps
from sprongus.service.secrets import SecretOps
from sprongus.service.transfer import TransferOps

ROOT = Path(__file__).resolve().parents[2]
ALL = frozenset(Permission)


def new_key(key_id: str = "k1") -> str:
    """One `id:base64key` entry for SPRONGUS_MASTER_KEYS / SPRONGUS_HMAC_KEYS."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode('ascii')}"


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'vault.db'}"


def clean_environ() -> dict[str, str]:
    """This process's environment without any SPRONGUS_* setting, for worker subprocesses."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}


def environment(url: str, master_keys: str, hmac_keys: str | None = None,
                batch_size: int | None = None) -> dict[str, str]:
    env = {"SPRONGUS_ENV": "dev", "SPRONGUS_DATABASE_URL": url, "SPRONGUS_MASTER_KEYS": master_keys}
    if hmac_keys:
        env["SPRONGUS_HMAC_KEYS"] = hmac_keys
    if batch_size is not None:
        env["SPRONGUS_BATCH_SIZE"] = str(batch_size)
    return env


@dataclass
class Stack:
    container: Container

    @property
    def secrets(self) -> SecretOps:
        ops: SecretOps = self.container.secret_ops()
        return ops

    @property
    def transfer(self) -> TransferOps:
        ops: TransferOps = self.container.transfer_ops()
        return ops

    @property
    def rotation(self) -> RotationOps:
        ops: RotationOps = self.container.rotation_ops()
        return ops

    @property
    def models(self) -> BoundModels:
        models: BoundModels = self.container.database()
        return models

    @property
    def db(self) -> peewee.Database:
        return self.models.db

    @property
    def audit(self) -> PeeweeAuditSink:
        sink: PeeweeAuditSink = self.container.audit_sink()
        return sink

    def close(self) -> None:
        self.db.close()


def build(env: Mapping[str, str]) -> Stack:
    return Stack(build_container(Settings.from_mapping(env)))


def stack(url: str, master_keys: str, hmac_keys: str | None = None, batch_size: int | None = None) -> Stack:
    return build(environment(url, master_keys, hmac_keys, batch_size))


def alice() -> Principal:
    return Principal("alice", ALL - {Permission.ADMIN}, frozenset({"p1"}))


def bob() -> Principal:
    return Principal("bob", ALL - {Permission.ADMIN}, frozenset({"p2"}))


def owner() -> Principal:
    return Principal.local_owner("owner")


def rows_as_text(cursor: Any, table: str) -> list[tuple[str | None, ...]]:
    """Every column of every row cast to text (Postgres, psycopg cursor)."""
    cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                   "AND table_schema = 'public' ORDER BY ordinal_position", (table,))
    columns = [name for (name,) in cursor.fetchall()]
    assert columns, f"table {table} has no columns"
    select = ", ".join(f'"{name}"::text' for name in columns)
    cursor.execute(f"SELECT {select} FROM {table}")
    return list(cursor.fetchall())


def in_threads(threads: int, work: Callable[[int], None]) -> list[BaseException]:
    """`work(0)` ... `work(threads - 1)` at once (a barrier starts them together); the errors they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:  # collected for the caller's assertion
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not any(t.is_alive() for t in pool), "a thread never finished"
    return errors
