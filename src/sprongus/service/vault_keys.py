"""The vault knows its keys: the configured master key is checked against the vault before anything is written,
running processes pick up a key another process added, and value-HMAC keys come with the vault.

A master key is recorded as a check value only it opens (random bytes wrapped by it), by the first write that uses
it. A key that opens neither its record nor any stored data key wrapped by it (nor, when it is new, anything else
the vault was written with) is refused, so a lost or replaced key file, a wrong keychain item or a wrong KMS key
never writes a secret that no other key can read. Reads check but never record and never make a key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sprongus.domain.envelope import Envelope, aad_for, length_prefixed
from sprongus.domain.errors import (
    ConfigError,
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
    MasterKeyChanged,
    Unavailable,
    VaultKeyMismatch,
)
from sprongus.ports import Clock
from sprongus.ports.random import RandomSource
from sprongus.ports.vault_keys import HMAC, MASTER, StoredDataKey, VaultKeyRecord, VaultKeyStore
from sprongus.service.vault_hmac import StoredHmacKeys

if TYPE_CHECKING:  # `keys status`'s answer: loaded with it
    from sprongus.domain.reports import KeyState

REFRESH_SECONDS = 5.0  # a key added elsewhere is used for new writes within this long
_SAMPLES = 5


def check_aad(key_id: str) -> bytes:
    return length_prefixed((b"sprongus.key-check.v1", key_id.encode()))


@dataclass(frozen=True)
class KeySource:
    """What the vault check needs from the configured key material."""

    location: str
    has_key: Callable[[], bool]  # False: a local provider whose key does not exist yet (made by the first write)
    reload: Callable[[], None] | None = None
    add_own_hmac_key: Callable[[], None] | None = None  # file/keychain/memory keep HMAC keys beside the master key
    generation: Callable[[], int] = lambda: 0  # changes when the keys were re-read (a new key may be current)
    stands_in_for: str | None = None  # a key file used because this provider is not reachable here ("keychain")


class VaultKeys:
    def __init__(self, store: VaultKeyStore, envelope: Envelope, clock: Clock, random: RandomSource,
                 source: KeySource, stored_hmac: StoredHmacKeys | None = None,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        """`stored_hmac`: given when the vault's own HMAC keys sign (no SPRONGUS_HMAC_KEYS, no local keyring).
        `refresh_seconds`: how often a writing process looks for keys added elsewhere."""
        self._store = store
        self._envelope = envelope
        self._clock = clock
        self._random = random
        self._source = source
        self._hmac = stored_hmac
        self._lock = threading.RLock()
        self._checked: str | None = None  # the current key id, once it matched the vault
        self._recorded = False  # ... and the vault holds its record
        self._refreshed_at = -float("inf")
        self._hmac_ready = False
        self._seen_generation = source.generation()
        self.refresh_seconds = refresh_seconds

    @property
    def ready(self) -> bool:
        return self._recorded and self._hmac_ready

    def check(self) -> None:
        """At start-up: refuse a master key that does not match the vault. Writes nothing.

        A KMS or database that does not answer now (or a KMS that refuses this identity) defers the check to the
        first use of the key, which meets the same problem until it is fixed, instead of failing the start: masked
        reads need no key, and a server started during an outage recovers with its dependencies."""
        with self._lock:
            try:
                self._verify(self._store.records(), creating=False)
            except (Unavailable, KeyAccessDenied):
                return
            self._refreshed_at = time.monotonic()

    def before_key_use(self) -> None:
        """Before the master key wraps anything that is not a secret (a bundle key, a reveal grant): checked
        against the vault, and never made here (a read never makes a key)."""
        if self._checked is not None:
            return
        with self._lock:
            self._verify(self._store.records(), creating=False)
            if self._checked is None:
                raise ConfigError("this vault has no master key yet: nothing was ever written to it")

    def before_write(self, fresh: bool = False) -> None:
        """Before anything is sealed, outside any transaction (the records it adds must not roll back with a write
        that lost a race): the current key, made now on a new vault, is checked and recorded; a key another
        process added is adopted; an HMAC key exists. Between refreshes it costs a clock read.

        `fresh`: check now, whatever the time (a master-key rotation, which may follow a key added just now)."""
        if fresh:
            self._refreshed_at = -float("inf")
        if self.ready and not self._refresh_due() and self._source.generation() == self._seen_generation:
            return
        with self._lock:
            records = self._store.records()
            if not self._recorded or self._refresh_due() or self._source.generation() != self._seen_generation:
                if self._hmac is None and self._source.add_own_hmac_key is not None and self._source.reload:
                    # A local keyring (`keys rotate-hmac` elsewhere added a version), re-read before the check:
                    # whatever it now holds is what gets checked, never used unchecked.
                    self._source.reload()
                self._verify(records, creating=True, current=self._adopt_newer_key(records))
                if self._hmac is not None:
                    self._hmac.refresh(records)
                self._refreshed_at = time.monotonic()
                self._seen_generation = self._source.generation()
            if self._hmac is not None:
                self._hmac.ensure()
            self._hmac_ready = True

    def _refresh_due(self) -> bool:
        return time.monotonic() - self._refreshed_at >= self.refresh_seconds

    # --- the check ----------------------------------------------------------------------------------------------

    def _verify(self, records: list[VaultKeyRecord], creating: bool, current: str | None = None) -> None:
        masters = {r.key_id: r for r in records if r.kind == MASTER}
        if not self._source.has_key():
            # A vault that holds secrets gets no new key unless the configuration still opens it (a provider
            # switch with the old provider retired); a lost key file is never silently replaced.
            if (masters or self._store.data_keys(1)) and not self._others_open(masters):
                known = ", ".join(sorted(masters)) or "older keys"
                away = self._source.stands_in_for
                if away and masters and all(key_id.startswith(away + ":") for key_id in masters):
                    raise KeyProviderUnavailable(
                        f"this vault's master key ({known}) is in the OS {away}, which is not reachable here (no "
                        "keychain service or D-Bus session: an SSH or CI session?); nothing was changed")
                raise VaultKeyMismatch(f"the master key does not match this vault: {self._source.location} holds "
                                       f"no master key, and this vault holds secrets under {known}; restore the "
                                       "key from a backup (no new key is made for a vault that holds secrets)")
            if not creating:
                return  # a new vault: its first write makes the key
        current = current or self._envelope.current_master_key_id()  # a first write makes a local key here
        if current != self._checked:
            if not self._matches(current, masters):
                raise self._mismatch(current)
            recorded = current in masters
            if creating and not recorded:
                self._record(current)  # before the key counts as checked: a failed record leaves it unchecked
                recorded = True
            self._checked, self._recorded = current, recorded
        elif creating and not self._recorded:
            self._record(current)
            self._recorded = True

    def is_checked(self, master_key_id: str) -> bool:
        """Whether `confirm` would pass now: a key sealed with before another key was adopted no longer is."""
        return master_key_id == self._checked

    def confirm(self, master_key_id: str) -> None:
        """After sealing or wrapping, before anything is stored: the key that did it is the checked one. A key
        file replaced under a running process, or re-read for an unknown key id, is never used unchecked."""
        if master_key_id != self._checked:
            self._refreshed_at = -float("inf")  # the next write checks the key now in use
            raise MasterKeyChanged(MasterKeyChanged.public)

    def _matches(self, current: str, masters: dict[str, VaultKeyRecord]) -> bool:
        if current in masters:
            if self._opens(masters[current]):
                return True
            # Its record does not open (damaged): the data it wrapped decides.
            if any(self._opens_data_key(sample) for sample in self._store.data_keys(_SAMPLES, current)):
                return True
        # A key the vault has no record of must open what the vault was written with: a record of another key, or
        # data those keys wrapped; never data claiming to be its own (junk rows must not decide for it).
        return self._others_open({k: r for k, r in masters.items() if k != current})

    def _others_open(self, masters: dict[str, VaultKeyRecord]) -> bool:
        """The configured keys open what the vault was written with: a record, else data a recorded key wrapped.
        With no records (a new vault, or one from before records) the stored data keys decide; an empty vault
        opens trivially."""
        if any(self._opens(record) for record in masters.values()):
            return True
        if masters:
            return any(self._opens_data_key(sample) for key_id in masters
                       for sample in self._store.data_keys(_SAMPLES, key_id))
        samples = self._store.data_keys(_SAMPLES)
        return not samples or any(self._opens_data_key(sample) for sample in samples)

    def _record(self, current: str) -> None:
        wrapped = self._envelope.wrap_key(self._random.bytes(32), check_aad(current))
        if wrapped.master_key_id != current:  # a KMS changed its primary version meanwhile: check that one next
            raise KeyProviderUnavailable(f"the current master key changed while it was checked ({current}); "
                                         "try again")
        record = VaultKeyRecord(MASTER, current, wrapped.blob, current, self._clock.now())

        def still_matches(records: list[VaultKeyRecord]) -> bool:  # under the store's lock: one first writer wins
            return self._matches(current, {r.key_id: r for r in records if r.kind == MASTER})

        if not self._store.add_master(record, still_matches):
            raise self._mismatch(current)

    def _mismatch(self, current: str) -> VaultKeyMismatch:
        return VaultKeyMismatch(f"the master key does not match this vault: {current} ({self._source.location}) "
                                "opens none of the keys this vault was written with; nothing was written. Restore "
                                "the right key, or point the key provider at it")

    def _opens(self, record: VaultKeyRecord) -> bool:
        return self._tries(lambda: self._envelope.unwrap_key(record.blob, record.key_id, check_aad(record.key_id)))

    def _opens_data_key(self, sample: StoredDataKey) -> bool:
        aad = aad_for(sample.scope, sample.key, sample.version)
        return self._tries(lambda: self._envelope.unwrap_key(sample.dek_wrapped, sample.master_key_id, aad))

    @staticmethod
    def _tries(unwrap: Callable[[], bytes]) -> bool:
        try:
            unwrap()
        except (Unavailable, KeyAccessDenied):
            raise  # an outage or a refused identity says nothing about the key: never a mismatch on its account
        except KeyDisabled:
            return True  # the provider holds this very key id but a version is disabled: not another key
        except (IntegrityError, KeyProviderError):
            return False
        return True

    def _adopt_newer_key(self, records: list[VaultKeyRecord]) -> str | None:
        """`keys rotate-master` in another process recorded a newer key: re-read ours, so new writes use it.
        Returns the current key id when it asked for it (a KMS may charge a call for each ask)."""
        masters = [r for r in records if r.kind == MASTER]
        if not masters or not self._source.has_key():
            return None
        current = self._envelope.current_master_key_id()
        if masters[-1].key_id != current and self._source.reload is not None:
            self._source.reload()
            current = self._envelope.current_master_key_id()
        return current

    # --- HMAC keys and status -----------------------------------------------------------------------------------

    def rotate_hmac(self) -> str:
        """A new value-HMAC key for new writes; older keys keep verifying. Returns its id."""
        with self._lock:
            self.before_write()
            if self._hmac is not None:
                return self._hmac.add()
            if self._source.add_own_hmac_key is not None:
                self._source.add_own_hmac_key()
                return self._envelope.current_hmac_key_id() or "?"
        raise ConfigError("SPRONGUS_HMAC_KEYS sets the value-HMAC keys: put a new key first in it instead")

    def rewrap_hmac_keys(self) -> tuple[int, int]:
        return self._hmac.rewrap() if self._hmac is not None else (0, 0)

    def states(self) -> list[KeyState]:
        from sprongus.domain.reports import KeyState

        records = self._store.records()
        current = self._envelope.current_master_key_id() if self._source.has_key() else None
        wraps: dict[str, int] = {}
        for record in records:
            if record.kind == HMAC:
                wraps[record.master_key_id] = wraps.get(record.master_key_id, 0) + 1
        return [KeyState(r.key_id, "current" if r.key_id == current else
                         ("opens" if self._opens(r) else "not available"), wraps.get(r.key_id, 0))
                for r in records if r.kind == MASTER]
