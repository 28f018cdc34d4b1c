"""A master-key provider made of the current provider plus retired ones kept for decryption."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from sprongus.domain.errors import IntegrityError, KeyProviderError, KeyProviderUnavailable
from sprongus.ports.crypto import HmacKeyring, MapFn, MasterKeyProvider, WrappedKey, batch_of


class CompositeMasterKeyProvider:
    """Wraps with the current provider; unwraps with whichever provider knows the key id (like MultiFernet)."""

    def __init__(self, current: MasterKeyProvider, retired: Sequence[MasterKeyProvider] = (),
                 reload: Callable[[], None] | None = None, unreachable: str | None = None) -> None:
        """`unreachable`: a provider whose keys cannot be reached here (the OS keychain, when a key file stands in
        for it): a key id of its own is an outage, not a key that no provider holds."""
        self.current = current
        self._unreachable = unreachable
        self._all = [current, *retired]
        self._reload = reload
        self._reloaded_for: set[str] = set()
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        return self.current.current_key_id()

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        return self.current.wrap(dek, aad)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        return self._provider_for(key_id).unwrap(wrapped, key_id, aad)

    def can_rewrap(self, key_id: str) -> bool:
        return self.can_unwrap(key_id)

    def rewrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[WrappedKey]:
        """The current provider re-wraps in bulk what it can take (its own versions; AWS: ReEncrypt from a retired
        key); the rest is unwrapped by its holder and wrapped by the current provider, each in bulk if it can."""
        native = batch_of(self.current)
        # Only a key id a configured provider holds (the current one, or one listed as retired) goes to the current
        # provider's re-encrypt: the configuration, not IAM alone, says which keys a rotation may move from.
        native_ids = {key_id for _, key_id, _ in items
                      if native is not None and native.can_rewrap(key_id) and self._holder(key_id) is not None}
        direct = [i for i, item in enumerate(items) if item[1] in native_ids]
        moved = [i for i, item in enumerate(items) if item[1] not in native_ids]
        done: dict[int, WrappedKey] = {}
        if moved and native is None:  # one call after the other per item, the items side by side
            done.update(zip(moved, map(lambda i: self.current.wrap(self.unwrap(*items[i]), items[i][2]), moved),
                            strict=True))
        elif moved:  # the DEKs first, then the current provider wraps them in bulk
            deks = self.unwrap_many([items[i] for i in moved], map)
            wrapped = self.wrap_many([(dek, items[i][2]) for dek, i in zip(deks, moved, strict=True)], map)
            done.update(zip(moved, wrapped, strict=True))
        if direct and native is not None:
            done.update(zip(direct, native.rewrap_many([items[i] for i in direct], map), strict=True))
        return [done[i] for i in range(len(items))]

    def wrap_many(self, items: Sequence[tuple[bytes, bytes]], map: MapFn) -> list[WrappedKey]:
        batch = batch_of(self.current)
        if batch is not None:
            return batch.wrap_many(items, map)
        return map(lambda item: self.current.wrap(*item), items)

    def unwrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[bytes]:
        """Each provider unwraps its own items, in bulk if it can; in order, an error raised."""
        groups: dict[int, list[int]] = {}
        providers: dict[int, MasterKeyProvider] = {}
        for i, (_, key_id, _) in enumerate(items):
            provider = self._provider_for(key_id)
            groups.setdefault(id(provider), []).append(i)
            providers[id(provider)] = provider
        done: dict[int, bytes] = {}
        for key, indices in groups.items():
            provider, sub = providers[key], [items[i] for i in indices]
            batch = batch_of(provider)
            deks = batch.unwrap_many(sub, map) if batch is not None else map(lambda it: provider.unwrap(*it), sub)
            done.update(zip(indices, deks, strict=True))
        return [done[i] for i in range(len(items))]

    def _provider_for(self, key_id: str) -> MasterKeyProvider:
        provider = self._holder(key_id)
        if provider is None and self._reload_once(key_id):
            provider = self._holder(key_id)
        if provider is None and self._unreachable and key_id.startswith(self._unreachable + ":"):
            raise KeyProviderUnavailable(f"master key {key_id} is in the OS {self._unreachable}, which is not "
                                         "reachable here (no keychain service or D-Bus session: an SSH or CI "
                                         "session?)")
        if provider is None:
            raise KeyProviderError(f"no configured key provider holds master key {key_id}")
        return provider

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
