"""Builds the master-key provider and value-HMAC keyring for each local key backend.

Only the container calls these. Vendor KMS providers plug in beside them by URI scheme.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sprongus.adapters.keychain import has_real_backend, real_backend
from sprongus.adapters.keys_file import FileKeyStore
from sprongus.adapters.keys_keychain import KeychainKeyStore
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring, parse_key_list
from sprongus.domain.errors import ConfigError
from sprongus.ports.crypto import HmacKeyring, MasterKeyProvider

Notice = Callable[[str], None]


@dataclass
class KeyMaterial:
    master: MasterKeyProvider
    hmac: HmacKeyring | None
    backend: str
    location: str
    add_master_key: Callable[[], None] | None = None


def memory_keys() -> KeyMaterial:
    """A random key for this process only: the `test` profile's default."""
    versions = KeyVersions.fresh()
    master = LocalMasterKeyProvider("memory", versions.master)

    def add_master_key() -> None:
        nonlocal versions
        versions = versions.with_new_master()
        master.reload(versions.master)

    return KeyMaterial(master, StaticHmacKeyring(versions.hmac, "memory"), "memory", "process memory",
                       add_master_key)


def env_keys(master_keys: str | None, hmac_keys: str | None) -> KeyMaterial:
    if not master_keys:
        raise ConfigError("SPRONGUS_MASTER_KEYS: required by the env key provider (id:base64key[,...])")
    hmac = StaticHmacKeyring(parse_key_list(hmac_keys, "SPRONGUS_HMAC_KEYS"), "env") if hmac_keys else None
    return KeyMaterial(LocalMasterKeyProvider("env", parse_key_list(master_keys, "SPRONGUS_MASTER_KEYS")), hmac,
                       "env", "SPRONGUS_MASTER_KEYS")


def file_keys(path: str, notice: Notice | None = None, reason: str | None = None,
              create: bool = True) -> KeyMaterial:
    """`create=False` for a retired provider: it only decrypts, so it must never mint a key of its own."""
    store = FileKeyStore(Path(path))
    versions, created = store.load_or_create() if create else (store.load_existing(), False)
    if created and notice and reason:
        notice(f"warning: {reason}; the master key is kept in {path} (mode 0600). Back it up: without it "
               "the vault cannot be decrypted.")
    return _local("file", versions, str(path), store.add_master_key)


def keychain_keys(vault_id: str, timeout: float, fallback_path: str, notice: Notice | None = None,
                  backend: Any = None, create: bool = True) -> KeyMaterial:
    """The OS keychain, or the key file when there is no real keychain (or this vault already uses the file)."""
    if os.path.exists(fallback_path):
        return file_keys(fallback_path, create=create)
    if backend is None:
        backend = real_backend(timeout)
    if backend is None or not has_real_backend(backend):
        return file_keys(fallback_path, notice, "no OS keychain is available", create=create)
    store = KeychainKeyStore(backend, vault_id, timeout, lock_path=Path(fallback_path))
    versions, _ = store.load_or_create() if create else (store.load_existing(), False)
    return _local("keychain", versions, f"OS keychain ({type(backend).__name__})", store.add_master_key)


def _local(provider: str, versions: KeyVersions, location: str,
           add_version: Callable[[], KeyVersions]) -> KeyMaterial:
    master = LocalMasterKeyProvider(provider, versions.master)
    hmac = StaticHmacKeyring(versions.hmac, provider)

    def add_master_key() -> None:
        # Local keyrings rotate the value-HMAC key together with the master key; old HMAC keys keep verifying.
        versions = add_version()
        master.reload(versions.master)
        hmac.reload(versions.hmac)

    return KeyMaterial(master, hmac, provider, location, add_master_key)
