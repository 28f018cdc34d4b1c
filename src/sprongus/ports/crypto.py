from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DataCipher(Protocol):
    """An AEAD for secret values. `decrypt` raises IntegrityError on any authentication failure."""

    @property
    def alg(self) -> str: ...

    @property
    def nonce_bytes(self) -> int: ...

    def new_key(self) -> bytes: ...

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """Returns (nonce, ciphertext-with-tag) under a fresh random nonce."""
        ...

    def decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class WrappedKey:
    master_key_id: str  # provider + key version, e.g. `env:k2` or a KMS key-version name
    blob: bytes


class MasterKeyProvider(Protocol):
    """Wraps data keys. unwrap raises IntegrityError on tampering, KeyProviderError when the key is unusable."""

    def current_key_id(self) -> str: ...

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes: ...

    def can_unwrap(self, key_id: str) -> bool:
        """Whether key_id belongs to this provider (a composite dispatches on it)."""
        ...


class HmacKeyring(Protocol):
    """The separate, rotatable keys for value HMACs. `key` raises IntegrityError for an unknown id."""

    def current_key_id(self) -> str | None: ...

    def key(self, key_id: str) -> bytes: ...
