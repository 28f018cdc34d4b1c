"""The `keychain` key provider's storage: the key versions as one item in the OS keychain (via keyring)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sprongus.adapters.keychain import KeychainItem
from sprongus.adapters.keys_file import key_update_lock
from sprongus.adapters.keys_local import KeyVersions
from sprongus.domain.errors import KeyProviderError

DEFAULT_TIMEOUT = 5.0


class KeychainKeyStore:
    """Loads the key versions from the keychain, creating them on first use."""

    def __init__(self, backend: Any, vault_id: str, timeout: float = DEFAULT_TIMEOUT,
                 lock_path: Path | None = None) -> None:
        self._item = KeychainItem(backend, f"keyring:{vault_id}", timeout)
        self._lock_path = lock_path

    def load_or_create(self) -> tuple[KeyVersions, bool]:
        text = self._get()
        if text is not None:
            return KeyVersions.loads(text, "the OS keychain item"), False
        versions = KeyVersions.fresh()
        self._set(versions)
        again = self._get()  # read back: another process may have written first, and the keychain must hold it
        if again is None:
            raise KeyProviderError("the OS keychain did not keep the new master key")
        return KeyVersions.loads(again, "the OS keychain item"), again == versions.dumps()

    def exists(self) -> bool:
        return self._get() is not None

    def load_existing(self) -> KeyVersions:
        text = self._get()
        if text is None:
            raise KeyProviderError("no sprongus keyring in the OS keychain")
        return KeyVersions.loads(text, "the OS keychain item")

    def add_master_key(self) -> KeyVersions:
        return self._update(lambda versions: versions.with_new_master().with_new_hmac())

    def add_hmac_key(self) -> KeyVersions:
        return self._update(KeyVersions.with_new_hmac)

    def _update(self, change: Callable[[KeyVersions], KeyVersions]) -> KeyVersions:
        lock = key_update_lock(self._lock_path) if self._lock_path else contextlib.nullcontext()
        with lock:
            versions = change(self.load_existing())
            self._set(versions)
            return versions

    def _get(self) -> str | None:
        return self._item.get()

    def _set(self, versions: KeyVersions) -> None:
        self._item.set(versions.dumps())
