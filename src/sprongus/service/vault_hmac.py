"""Value-HMAC keys the vault keeps itself, wrapped by the master key: made by the first write when nothing else
signs, rotated with `keys rotate-hmac`, re-wrapped by `keys rotate-master`, and picked up by running processes."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sprongus.domain.envelope import Envelope, length_prefixed
from sprongus.domain.errors import IntegrityError, KeyAccessDenied, KeyDisabled, KeyProviderError, Unavailable
from sprongus.ports import Clock
from sprongus.ports.random import RandomSource
from sprongus.ports.vault_keys import HMAC, VaultKeyRecord, VaultKeyStore

NAMESPACE = "db"  # the vault's database keeps them (not "vault": the OpenBao provider's key ids start so)


def hmac_aad(key_id: str) -> bytes:
    return length_prefixed((b"sprongus.hmac-key.v1", key_id.encode()))


class VaultHmacKeyring:
    """An HmacKeyring over the vault's keys (ids `db:h1-…`, the newest signs). Loaded on first use; an id it does
    not know yet (another process added a key) reloads the keys once. A load that meets an outage changes nothing
    and is tried again next time: an outage must never make good values look tampered."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._current: str | None = None
        self._loader: Callable[[], None] | None = None
        self._loaded = False
        self._tried: set[str] = set()
        self._lock = threading.Lock()
        self.known: list[tuple[str, bytes]] = []  # (id without the namespace, key), newest first

    def set_loader(self, loader: Callable[[], None]) -> None:
        self._loader = loader

    def adopt(self, keys: list[tuple[str, bytes]]) -> None:
        """The vault's keys, newest first."""
        self.known = list(keys)
        named = {f"{NAMESPACE}:{kid}": key for kid, key in keys}
        self._keys = named
        self._current = next(iter(named), None)
        self._loaded = True

    def current_key_id(self) -> str | None:
        if not self._loaded and self._loader is not None:
            self._loader()
        return self._current

    def key(self, key_id: str) -> bytes:
        key = self._keys.get(key_id)
        if key is None and key_id.startswith(f"{NAMESPACE}:") and self._loader is not None:
            with self._lock:
                first_miss = key_id not in self._tried
            if first_miss:
                self._loader()  # raises on an outage, before the id counts as tried
                with self._lock:
                    self._tried.add(key_id)
                key = self._keys.get(key_id)
        if key is None:
            raise IntegrityError()
        return key


class StoredHmacKeys:
    """Loads, makes, rotates and re-wraps the vault's HMAC keys (`vault_key` rows of kind HMAC)."""

    def __init__(self, store: VaultKeyStore, envelope: Envelope, clock: Clock, random: RandomSource,
                 keyring: VaultHmacKeyring) -> None:
        self._store = store
        self._envelope = envelope
        self._clock = clock
        self._random = random
        self.keyring = keyring
        keyring.set_loader(self.load)

    def load(self) -> None:
        keys = []
        for record in reversed(_hmac_records(self._store.records())):  # newest first
            try:
                keys.append((record.key_id, self._envelope.unwrap_key(record.blob, record.master_key_id,
                                                                      hmac_aad(record.key_id))))
            except (Unavailable, KeyAccessDenied, KeyDisabled):
                raise  # the key could not be used now: not a damaged row, and nothing to forget or replace
            except (IntegrityError, KeyProviderError):
                continue  # a damaged row: the values it signed fail their check, and `keys verify` names them
        self.keyring.adopt(keys)

    def refresh(self, records: list[VaultKeyRecord]) -> None:
        """A newer key (`keys rotate-hmac` in another process) starts signing here too."""
        stored = _hmac_records(records)
        if stored and f"{NAMESPACE}:{stored[-1].key_id}" != self.keyring.current_key_id():
            self.load()

    def ensure(self) -> None:
        if self.keyring.current_key_id() is None:
            self.add()

    def add(self) -> str:
        """A new signing key; returns its id."""
        number = len(_hmac_records(self._store.records())) + 1
        key_id = f"h{number}-{self._random.bytes(4).hex()}"
        key = self._random.bytes(32)
        wrapped = self._envelope.wrap_key(key, hmac_aad(key_id))
        self._store.add(VaultKeyRecord(HMAC, key_id, wrapped.blob, wrapped.master_key_id, self._clock.now()))
        # Signs with its own new key at once (no KMS round trip to read it back); a key another process added at
        # the same moment is learnt the first time one of its values is checked.
        self.keyring.adopt([(key_id, key), *self.keyring.known])
        return f"{NAMESPACE}:{key_id}"

    def rewrap(self) -> tuple[int, int]:
        """After a master-key rotation: wrap every HMAC key with the current master key. (moved, skipped): a row
        that does not open is skipped, not a reason to stop the others."""
        current = self._envelope.current_master_key_id()
        moved = skipped = 0
        for record in _hmac_records(self._store.records()):
            if record.master_key_id == current:
                continue
            try:
                key = self._envelope.unwrap_key(record.blob, record.master_key_id, hmac_aad(record.key_id))
            except (Unavailable, KeyAccessDenied, KeyDisabled):
                raise
            except (IntegrityError, KeyProviderError):
                skipped += 1
                continue
            wrapped = self._envelope.wrap_key(key, hmac_aad(record.key_id))
            self._store.rewrap(VaultKeyRecord(HMAC, record.key_id, wrapped.blob, wrapped.master_key_id,
                                              record.created_at))
            moved += 1
        return moved, skipped


def _hmac_records(records: list[VaultKeyRecord]) -> list[VaultKeyRecord]:
    return [r for r in records if r.kind == HMAC]
