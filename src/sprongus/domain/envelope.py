"""Envelope encryption rules (docs/design.md#crypto-format): AAD binding, DEK wrapping, value HMAC, checksum.

Envelope is the only thing that touches the data cipher and the master key: callers hand it values, AADs and
sealed fields, never raw keys to wrap with a cipher of their own choosing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_lib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sprongus.domain.errors import IntegrityError, KeyProviderError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports.crypto import (
    BatchMasterKeyProvider,
    DataCipher,
    HmacKeyring,
    MapFn,
    MasterKeyProvider,
    WrappedKey,
    batch_of,
    serial_map,
)

AAD_FORMAT_VERSION = "sprongus.aad.v1"
_AAD_PREFIX = AAD_FORMAT_VERSION.encode()


def length_prefixed(parts: Iterable[bytes]) -> bytes:
    """Unambiguous concatenation: each part is preceded by its 4-byte big-endian length."""
    out = bytearray()
    for part in parts:
        out += len(part).to_bytes(4, "big")
        out += part
    return bytes(out)


def aad_for(scope: Scope, key: str, version: int) -> bytes:
    """Binds a ciphertext to its place and version, so copied or rolled-back rows fail to decrypt."""
    return length_prefixed((_AAD_PREFIX, scope.owner_type.value.encode(), (scope.owner_id or "").encode(),
                            key.encode(), str(version).encode()))


@dataclass(frozen=True, slots=True)
class Sealed:
    """The stored crypto fields of one secret version. Its repr (a traceback's locals, a debug line) shows where the
    version is sealed, not what: the ciphertext, the wrapped key and the value's HMAC are left out."""

    ciphertext: bytes = field(repr=False)
    dek_wrapped: bytes = field(repr=False)
    nonce: bytes
    alg: str
    master_key_id: str
    hmac: str | None = field(repr=False)


def checksum(sealed: Sealed, aad: bytes) -> str:
    """SHA-256 over the stored crypto fields and their place: detects bitrot without any key."""
    parts = [aad, sealed.ciphertext, sealed.dek_wrapped, sealed.nonce, sealed.alg.encode(),
             sealed.master_key_id.encode(), (sealed.hmac or "").encode()]
    return "sha256:" + hashlib.sha256(length_prefixed(parts)).hexdigest()


class Envelope:
    """Seals values with a fresh DEK and nonce, wraps the DEK with the master key, opens with any known key."""

    def __init__(self, ciphers: Mapping[str, DataCipher], current_alg: str, keys: MasterKeyProvider,
                 hmac_keys: HmacKeyring | None = None) -> None:
        if current_alg not in ciphers:
            raise KeyProviderError(f"no data cipher for alg {current_alg}")
        self._ciphers = dict(ciphers)
        self._cipher = ciphers[current_alg]
        self._keys = keys
        self._hmac_keys = hmac_keys

    def current_master_key_id(self) -> str:
        return self._keys.current_key_id()

    def wrap_key(self, key: bytes, aad: bytes) -> WrappedKey:
        """Wrap key material that is not a DEK (a bundle key, a grant's MAC key) with the current master key."""
        return self._keys.wrap(key, aad)

    def unwrap_key(self, blob: bytes, key_id: str, aad: bytes) -> bytes:
        return self._keys.unwrap(blob, key_id, aad)

    def seal(self, value: SecretValue, aad: bytes) -> Sealed:
        dek = self._cipher.new_key()
        return self.seal_with_dek(dek, value, aad, self._keys.wrap(dek, aad))

    def seal_with_dek(self, dek: bytes, value: SecretValue, aad: bytes, wrapped: WrappedKey) -> Sealed:
        plaintext = value.encode()
        nonce, ciphertext = self._cipher.encrypt(dek, plaintext, aad)
        return Sealed(ciphertext, wrapped.blob, nonce, self._cipher.alg, wrapped.master_key_id,
                      self._sign(plaintext, aad))

    def unwrap_dek(self, sealed: Sealed, aad: bytes) -> bytes:
        return self._keys.unwrap(sealed.dek_wrapped, sealed.master_key_id, aad)

    def rewrap_under(self, sealed: Sealed, aad: bytes, wrap_key: bytes, key_id: str,
                     dek: bytes | None = None) -> Sealed:
        """The same value with its DEK wrapped by a local key (a passphrase bundle's) instead of the master key;
        `dek`: the DEK `unwrap_deks` already gave for it."""
        nonce, wrapped = self._cipher.encrypt(wrap_key, self.unwrap_dek(sealed, aad) if dek is None else dek, aad)
        return replace(sealed, dek_wrapped=nonce + wrapped, master_key_id=key_id)

    def open_under(self, sealed: Sealed, aad: bytes, wrap_key: bytes) -> SecretValue:
        """Open a value whose DEK `rewrap_under` wrapped with `wrap_key`."""
        blob, size = sealed.dek_wrapped, self._cipher.nonce_bytes
        return self.open(sealed, aad, dek=self._cipher.decrypt(wrap_key, blob[:size], blob[size:], aad))

    def open(self, sealed: Sealed, aad: bytes, dek: bytes | None = None) -> SecretValue:
        if dek is None:
            dek = self.unwrap_dek(sealed, aad)
        cipher = self._ciphers.get(sealed.alg)
        if cipher is None:
            raise IntegrityError()
        plaintext = cipher.decrypt(dek, sealed.nonce, sealed.ciphertext, aad)
        self._check_hmac(sealed.hmac, plaintext, aad)
        try:
            return SecretValue(plaintext.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise IntegrityError() from None

    def rewrap(self, sealed: Sealed, aad: bytes) -> Sealed:
        """Re-wrap the DEK under the current master key; ciphertext, nonce and value stay as they are.

        A value HMAC made with another key (a retired provider's) is checked and re-made with the current one
        (or dropped when nothing signs now), so retiring the old provider after the rotation breaks no reveal.
        """
        dek = self.unwrap_dek(sealed, aad)
        wrapped = self._keys.wrap(dek, aad)
        tag = sealed.hmac
        if tag is not None and tag.rpartition(":")[0] != self._current_hmac_id():
            cipher = self._ciphers.get(sealed.alg)
            if cipher is None:
                raise IntegrityError()
            plaintext = cipher.decrypt(dek, sealed.nonce, sealed.ciphertext, aad)
            self._check_hmac(tag, plaintext, aad)  # never launder a tampered value into a fresh tag
            tag = self._sign(plaintext, aad)
        return Sealed(sealed.ciphertext, wrapped.blob, sealed.nonce, sealed.alg, wrapped.master_key_id, tag)

    def rewrap_many(self, items: Sequence[tuple[Sealed, bytes]], map: MapFn = serial_map) -> list[Sealed]:
        """`rewrap` of many (sealed, AAD) pairs, in order; an error raised fails them all.

        With a provider that re-wraps in bulk (BatchMasterKeyProvider: a transit batch, AWS ReEncrypt) the DEKs go
        to it in one request per chunk, or one re-encrypt each, through `map`, and never reach this process. A row
        whose value HMAC must be re-made needs its DEK and value, so it takes `rewrap` through `map` instead.
        """
        batch = self._batch_keys()
        if batch is None:
            return map(lambda item: self.rewrap(*item), items)
        current = self._current_hmac_id()
        resign = [i for i, (sealed, _) in enumerate(items)
                  if sealed.hmac is not None and sealed.hmac.rpartition(":")[0] != current]
        done = dict(zip(resign, map(lambda i: self.rewrap(*items[i]), resign), strict=True))
        rest = [i for i in range(len(items)) if i not in done]
        pending = [(items[i][0].dek_wrapped, items[i][0].master_key_id, items[i][1]) for i in rest]
        wrapped = batch.rewrap_many(pending, map) if pending else []
        for i, key in zip(rest, wrapped, strict=True):
            done[i] = replace(items[i][0], dek_wrapped=key.blob, master_key_id=key.master_key_id)
        return [done[i] for i in range(len(items))]

    def unwrap_deks(self, items: Sequence[tuple[Sealed, bytes]], map: MapFn = serial_map) -> list[bytes]:
        """`unwrap_dek` of many (sealed, AAD) pairs, in bulk where the provider can (bundle export)."""
        batch = self._batch_keys()
        if batch is None:
            return map(lambda item: self.unwrap_dek(*item), items)
        return batch.unwrap_many([(s.dek_wrapped, s.master_key_id, aad) for s, aad in items], map)

    def seal_many(self, items: Sequence[tuple[SecretValue, bytes]], map: MapFn = serial_map) -> list[Sealed]:
        """`seal` of many (value, AAD) pairs: fresh DEKs, wrapped in bulk where the provider can (imports)."""
        batch = self._batch_keys()
        if batch is None:
            return map(lambda item: self.seal(*item), items)
        deks = [self._cipher.new_key() for _ in items]
        wrapped = batch.wrap_many([(dek, aad) for dek, (_, aad) in zip(deks, items, strict=True)], map)
        return [self.seal_with_dek(dek, value, aad, key)
                for dek, (value, aad), key in zip(deks, items, wrapped, strict=True)]

    def _batch_keys(self) -> BatchMasterKeyProvider | None:
        return batch_of(self._keys)

    def current_hmac_key_id(self) -> str | None:
        return self._current_hmac_id()

    def _current_hmac_id(self) -> str | None:
        return None if self._hmac_keys is None else self._hmac_keys.current_key_id()

    @property
    def signs_values(self) -> bool:
        return self._hmac_keys is not None and self._hmac_keys.current_key_id() is not None

    def _sign(self, plaintext: bytes, aad: bytes) -> str | None:
        if self._hmac_keys is None:
            return None
        key_id = self._hmac_keys.current_key_id()
        if key_id is None:
            return None
        return f"{key_id}:{_mac(self._hmac_keys.key(key_id), plaintext, aad)}"

    def _check_hmac(self, tag: str | None, plaintext: bytes, aad: bytes) -> None:
        if tag is None:
            return
        key_id, sep, expected = tag.rpartition(":")
        if not sep or self._hmac_keys is None:
            raise IntegrityError()
        actual = _mac(self._hmac_keys.key(key_id), plaintext, aad)
        if not hmac_lib.compare_digest(actual, expected):
            raise IntegrityError()


def _mac(key: bytes, plaintext: bytes, aad: bytes) -> str:
    digest = hmac_lib.digest(key, length_prefixed((aad, plaintext)), "sha256")
    return base64.b64encode(digest).decode("ascii")
