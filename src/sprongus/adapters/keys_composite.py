"""A master-key provider made of the current provider plus retired ones kept for decryption."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from sprongus.domain.errors import IntegrityError, KeyProviderError
from sprongus.ports.crypto import HmacKeyring, MasterKeyProvider, WrappedKey


class CompositeMasterKeyProvider:
    """Wraps with the current provider; unwraps with whichever provider knows the key id (like MultiFernet)."""

    def __init__(self, current: MasterKeyProvider, retired: Sequence[MasterKeyProvider] = (),
                 reload: Callable[[], None] | None = None) -> None:
        self.current = current
        self._all = [current, *retired]
        self._reload = reload
        self._reloaded_for: set[str] = set()
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        return self.current.current_key_id()

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        return self.current.wrap(dek, aad)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        provider = self._holder(key_id)
        if provider is None and self._reload_once(key_id):
            provider = self._holder(key_id)
        if provider is None:
            raise KeyProviderError(f"no configured key provider holds master key {key_id}")
        return provider.unwrap(wrapped, key_id, aad)

    def _holder(self, key_id: str) -> MasterKeyProvider | None:
        return next((provider for provider in self._all if provider.can_unwrap(key_id)), None)

    def _reload_once(self, key_id: str) -> bool:
        """A key id this process does not know may be a version another process added (`keys rotate-master`
        while this server runs): re-read the keys once for it, instead of failing until a restart."""
        with self._lock:
            if self._reload is None or key_id in self._reloaded_for:
                return False
            if len(self._reloaded_for) >= 1000:  # ids from imported bundles: bounded, never a growing set
                self._reloaded_for.clear()
            self._reloaded_for.add(key_id)
            self._reload()
            return True

    def can_unwrap(self, key_id: str) -> bool:
        return any(provider.can_unwrap(key_id) for provider in self._all)


class CompositeHmacKeyring:
    """Signs with the current provider's HMAC key; verifies with any provider's, retired ones included."""

    def __init__(self, current: HmacKeyring | None, retired: Sequence[HmacKeyring | None] = ()) -> None:
        self._current = current
        self._all = [k for k in (current, *retired) if k is not None]

    def current_key_id(self) -> str | None:
        return None if self._current is None else self._current.current_key_id()

    def key(self, key_id: str) -> bytes:
        for keyring in self._all:
            try:
                return keyring.key(key_id)
            except IntegrityError:
                continue
        raise IntegrityError()
