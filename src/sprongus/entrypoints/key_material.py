"""Builds the master-key provider and value-HMAC keyring for each local key backend.

Only the container calls these. Vendor KMS providers plug in beside them by URI scheme.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sprongus.adapters.keychain import has_real_backend, real_backend
from sprongus.adapters.keys_file import FileKeyStore
from sprongus.adapters.keys_keychain import KeychainKeyStore
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring, parse_key_list
from sprongus.domain.errors import ConfigError, KeyProviderError
from sprongus.ports.crypto import HmacKeyring, MasterKeyProvider

Notice = Callable[[str], None]


@dataclass
class KeyMaterial:
    """The master key provider and HMAC keyring of one key backend, with its maintenance hooks."""

    master: MasterKeyProvider
    hmac: HmacKeyring | None
    backend: str
    location: str
    add_master_key: Callable[[], None] | None = None
    # Re-read the keys from where they are kept: another process may have added a version (`keys rotate-master`).
    reload: Callable[[], None] | None = None
    add_hmac_key: Callable[[], None] | None = None
    has_key: Callable[[], bool] = lambda: True
    generation: Callable[[], int] = lambda: 0  # grows whenever the keys are re-read: the vault check looks again
    # The key file standing in for an OS keychain that is not reachable here (no keychain service, no D-Bus session
    # over SSH): a vault whose keys are the keychain's is then an outage, not a lost key.
    stands_in_for: str | None = None


def memory_keys() -> KeyMaterial:
    """A random key for this process only: the `test` profile's default."""
    versions = KeyVersions.fresh()
    master = LocalMasterKeyProvider("memory", versions.master)
    hmac = StaticHmacKeyring(versions.hmac, "memory")

    generation = [0]

    def add_master_key() -> None:
        nonlocal versions
        versions = versions.with_new_master()
        master.reload(versions.master)
        generation[0] += 1

    def add_hmac_key() -> None:
        nonlocal versions
        versions = versions.with_new_hmac()
        hmac.reload(versions.hmac)
        generation[0] += 1

    return KeyMaterial(master, hmac, "memory", "process memory", add_master_key, add_hmac_key=add_hmac_key,
                       generation=lambda: generation[0])


def env_keys(master_keys: str | None, hmac_keys: str | None) -> KeyMaterial:
    if not master_keys:
        raise ConfigError("SPRONGUS_MASTER_KEYS: required by the env key provider (id:base64key[,...])")
    hmac = StaticHmacKeyring(parse_key_list(hmac_keys, "SPRONGUS_HMAC_KEYS"), "env") if hmac_keys else None
    return KeyMaterial(LocalMasterKeyProvider("env", parse_key_list(master_keys, "SPRONGUS_MASTER_KEYS")), hmac,
                       "env", "SPRONGUS_MASTER_KEYS")


class _KeptKeys(Protocol):
    """Where a local provider keeps its key versions: a 0600 file or an OS keychain item."""

    def load_or_create(self) -> tuple[KeyVersions, bool]: ...

    def exists(self) -> bool: ...

    def load_existing(self) -> KeyVersions: ...

    def add_master_key(self) -> KeyVersions: ...

    def add_hmac_key(self) -> KeyVersions: ...


def file_keys(path: str, notice: Notice | None = None, reason: str | None = None,
              create: bool = True) -> KeyMaterial:
    """`create=False` for a retired provider: it only decrypts, so it must never mint a key of its own.

    A missing key file is not created here: only the first write creates it (reads never create keys), and the
    vault's key check refuses a missing key outright when the vault already holds secrets.
    """
    store = FileKeyStore(Path(path))

    def created_notice() -> None:
        if notice and reason:
            notice(f"warning: {reason}; the master key is kept in {path} (mode 0600). Back it up: without it "
                   "the vault cannot be decrypted.")

    return _local("file", store, str(path), f"the key file {path} does not exist", create, created_notice)


def keychain_keys(vault_id: str, timeout: float, fallback_path: str, notice: Notice | None = None,
                  backend: Any = None, create: bool = True) -> KeyMaterial:
    """The OS keychain, or the key file when there is no real keychain (or this vault already uses the file)."""
    if os.path.exists(fallback_path):
        return file_keys(fallback_path, create=create)
    if backend is None:
        backend = real_backend(timeout)
    if backend is None or not has_real_backend(backend):
        material = file_keys(fallback_path, notice, "no OS keychain is available", create=create)
        material.stands_in_for = "keychain"
        return material
    store = KeychainKeyStore(backend, vault_id, timeout, lock_path=Path(fallback_path))
    return _local("keychain", store, f"OS keychain ({type(backend).__name__})",
                  "the OS keychain holds no sprongus master key", create, None)


def _local(provider: str, store: _KeptKeys, location: str, missing: str, create: bool,
           created_notice: Callable[[], None] | None) -> KeyMaterial:
    if store.exists():  # unreadable or malformed is an error of its own: never papered over with a new key
        versions: KeyVersions | None = store.load_existing()
    elif create:
        versions = None
    else:
        raise KeyProviderError(missing)
    hmac = StaticHmacKeyring(versions.hmac if versions else [], provider)

    def first_key() -> list[tuple[str, bytes]]:
        made, created = store.load_or_create()
        hmac.reload(made.hmac)
        if created and created_notice:
            created_notice()
        return made.master

    master = LocalMasterKeyProvider(provider, versions.master if versions else [], first_key, missing)

    generation = [0]

    def adopt(new: KeyVersions) -> None:
        master.reload(new.master)
        hmac.reload(new.hmac)
        generation[0] += 1

    def has_key() -> bool:
        # A sibling process (another gunicorn worker) may have made the key since this one started without it:
        # adopt it, or this process would call the vault's secrets unopenable and refuse them.
        if not master.has_key and store.exists():
            adopt(store.load_existing())
        return master.has_key

    return KeyMaterial(master, hmac, provider, location,
                       add_master_key=lambda: adopt(store.add_master_key()),
                       reload=lambda: adopt(store.load_existing()) if has_key() else None,
                       add_hmac_key=lambda: adopt(store.add_hmac_key()),
                       has_key=has_key, generation=lambda: generation[0])

