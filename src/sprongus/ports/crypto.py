from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")


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
    """A data key wrapped by a master key, and which master key (and version) wrapped it; a repr leaves the key out."""

    master_key_id: str  # provider + key version, e.g. `env:k2` or a KMS key-version name
    blob: bytes = field(repr=False)


class MasterKeyProvider(Protocol):
    """Wraps data keys. unwrap raises IntegrityError on tampering, KeyProviderError when the key is unusable."""

    def current_key_id(self) -> str: ...

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes: ...

    def can_unwrap(self, key_id: str) -> bool:
        """Whether key_id belongs to this provider (a composite dispatches on it)."""
        ...


# True while the operator's vault-wide rotation (`keys rotate-master`, service/vault_rewrap.py) makes its KMS calls.
# A provider may then wait out a vendor's quota refusal with backoff, so a long rotation rides out a moment over
# quota; an API request (a reveal, a batch, an import) must not: it holds a worker thread, and its client can retry.
BULK_WORK: ContextVar[bool] = ContextVar("sprongus_bulk_kms_work", default=False)


class MapFn(Protocol):
    """`fn` over items with bounded concurrency, results in order, an error raised (the service's BoundedPool.map)."""

    def __call__(self, fn: Callable[[T], R], items: Sequence[T], /) -> list[R]: ...


class BatchMasterKeyProvider(MasterKeyProvider, Protocol):
    """An optional capability: a provider that does many wraps at once (a batch request, or the vendor's re-encrypt
    that keeps the DEK inside the KMS). `map` is the caller's bounded pool: a provider sends its requests (whole
    batches, or one call per item) through it. Results are in order; on any failure an error is raised (the same
    kinds as the single-item calls) and nothing is returned."""

    def can_rewrap(self, key_id: str) -> bool:
        """Whether rewrap_many takes a DEK wrapped by key_id (its own versions; AWS: any key of its region)."""
        ...

    def rewrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[WrappedKey]:
        """(wrapped, key_id, aad) each, key_id one that can_rewrap -> the same DEK wrapped by the current key
        version under the same AAD."""
        ...

    def wrap_many(self, items: Sequence[tuple[bytes, bytes]], map: MapFn) -> list[WrappedKey]:
        """(dek, aad) each -> wrapped by the current key version."""
        ...

    def unwrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[bytes]:
        """(wrapped, key_id, aad) each -> the DEK."""
        ...


def batch_of(provider: MasterKeyProvider) -> BatchMasterKeyProvider | None:
    """The provider as a bulk one when it has every call of one (a wrapper that forwards only some: None)."""
    if all(callable(getattr(provider, name, None)) for name in ("can_rewrap", "rewrap_many", "wrap_many",
                                                                 "unwrap_many")):
        return cast(BatchMasterKeyProvider, provider)
    return None


def serial_map(fn: Callable[[T], R], items: Sequence[T], /) -> list[R]:
    """A MapFn without concurrency."""
    return [fn(item) for item in items]


class HmacKeyring(Protocol):
    """The separate, rotatable keys for value HMACs. `key` raises IntegrityError for an unknown id."""

    def current_key_id(self) -> str | None: ...

    def key(self, key_id: str) -> bytes: ...
