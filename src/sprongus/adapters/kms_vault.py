"""HashiCorp Vault / OpenBao transit master keys: a transit key wraps DEKs, each bound to its AAD.

The client (hvac) is built by entrypoints/kms_clients/vault.py. The binding depends on the key, read once per
process from `transit/keys/NAME` (and never changes for a key):

- a derived key (`derived=true`, the only kind before release 3): the binding is the derivation `context`, from
  which transit derives a per-context key with HKDF;
- a standard AEAD key (`bao write -f transit/keys/NAME`: aes256-gcm96, aes128-gcm96, chacha20-poly1305): the same
  binding as `associated_data`, authenticated by the key's AES-GCM (or ChaCha20-Poly1305). Before its first wrap the
  provider checks once that the server honours associated_data (a server that ignored it would bind nothing).

Either way a wrapped DEK only unwraps under the AAD it was wrapped with. Other key types (RSA, ECDSA, ...) are
refused. Bulk work (rotate-master, bundle export, imports) sends `batch_input` requests of up to BATCH items,
several in flight: rewrap for a derived key (the DEK never leaves transit), decrypt + encrypt for a standard one
(transit's rewrap takes no associated_data).

Least-privilege policy for a key `transit/keys/NAME`: `update` on `transit/encrypt/NAME`, `transit/decrypt/NAME`
and (derived keys, for rotate-master) `transit/rewrap/NAME`, `read` on `transit/keys/NAME`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sprongus.adapters.kms_vault_errors import call_failure, rejected
from sprongus.domain.errors import (
    IntegrityError,
    KeyProviderError,
    KeyProviderUnavailable,
)
from sprongus.ports.crypto import MapFn, WrappedKey, serial_map

if TYPE_CHECKING:
    import hvac  # type: ignore[import-untyped]

PREFIX = "vault"
BATCH = 50  # items per batch_input request: a page of 500 is 10 requests, sent side by side
AEAD_TYPES = frozenset({"aes256-gcm96", "aes128-gcm96", "chacha20-poly1305"})
_CIPHERTEXT = re.compile(r"vault:v([1-9][0-9]{0,8}):")  # a version number int() reads whatever the server sent
_PROBE = b"sprongus.transit-probe.v1"
_KEY_TYPE = re.compile(r"[a-z0-9-]{1,32}")  # transit's key types: aes256-gcm96, rsa-4096, ecdsa-p256, ...


def derivation_context(aad: bytes) -> str:
    """The transit binding for an AAD (`context` of a derived key, `associated_data` of a standard one): a
    fixed-size digest, so it never grows with key names."""
    return base64.b64encode(hashlib.sha256(b"sprongus.dek.v1\0" + aad).digest()).decode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class VaultTransitMasterKeyProvider:
    """Wraps with the transit key's latest version, unwraps with the version named in the ciphertext.

    Raises IntegrityError for a tampered ciphertext or a wrong AAD, KeyAccessDenied (policy or token), KeyDisabled
    (a version below min_decryption_version), KeyProviderUnavailable (sealed, down, unreachable, timed out) and
    KeyProviderError otherwise.
    """

    def __init__(self, client: hvac.Client, mount: str, name: str) -> None:
        self._client = client
        self._mount, self._name = mount.strip("/"), name
        self._prefix = f"{PREFIX}:{self._mount}/{name}:v"
        self._binding: str | None = None  # "context" (derived key) or "associated_data" (standard AEAD key)
        self._honoured = False  # a standard key's associated_data was seen to bind (checked before a first wrap)
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        latest = self._read_key().get("latest_version")
        if not isinstance(latest, int) or isinstance(latest, bool) or latest < 1:
            raise KeyProviderError(f"transit key {self._mount}/{self._name}: the server named no latest version")
        return self._key_id(latest)

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        return self.wrap_many([(dek, aad)], serial_map)[0]

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        return self.unwrap_many([(wrapped, key_id, aad)], serial_map)[0]

    def rewrap(self, wrapped: bytes, key_id: str, aad: bytes) -> WrappedKey:
        """Moves a wrapped DEK to the latest key version; for a derived key inside Vault (the DEK never leaves it
        in plaintext). Same errors as unwrap."""
        return self.rewrap_many([(wrapped, key_id, aad)], serial_map)[0]

    def can_unwrap(self, key_id: str) -> bool:
        return key_id.startswith(self._prefix) and key_id[len(self._prefix):].isdigit()

    def can_rewrap(self, key_id: str) -> bool:
        return self.can_unwrap(key_id)

    def wrap_many(self, items: Sequence[tuple[bytes, bytes]], map: MapFn) -> list[WrappedKey]:
        binding = self._require_bound()
        entries = [{"plaintext": _b64(dek), binding: derivation_context(aad)} for dek, aad in items]
        return [self._wrapped(r) for r in self._chunked("encrypt", entries, map)]

    def unwrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[bytes]:
        entries = self._sealed_entries(items)
        return [self._plaintext(r) for r in self._chunked("decrypt", entries, map)]

    def rewrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[WrappedKey]:
        entries = self._sealed_entries(items)
        if self._mode() == "context":
            return [self._wrapped(r) for r in self._chunked("rewrap", entries, map)]
        binding = self._require_bound()

        def moved(chunk: list[dict[str, str]]) -> list[dict[str, Any]]:  # two requests, the DEKs in between
            plain = self._batch("decrypt", chunk)
            again = [{"plaintext": _b64(self._plaintext(r)), binding: e[binding]} for r, e in zip(plain, chunk,
                                                                                                    strict=True)]
            return self._batch("encrypt", again)

        return [self._wrapped(r) for chunk in map(moved, _chunks(entries)) for r in chunk]

    def _key_id(self, version: int) -> str:
        return f"{self._prefix}{version}"

    def _sealed_entries(self, items: Sequence[tuple[bytes, str, bytes]]) -> list[dict[str, str]]:
        binding = self._mode()
        return [{"ciphertext": self._ciphertext(wrapped, key_id), binding: derivation_context(aad)}
                for wrapped, key_id, aad in items]

    def _ciphertext(self, wrapped: bytes, key_id: str) -> str:
        """The stored blob as transit's `vault:vN:...` text, checked against the version the row claims."""
        if not self.can_unwrap(key_id):
            raise KeyProviderError(f"master key {key_id} is not a version of the transit key {self._mount}/"
                                   f"{self._name}")
        try:
            text = wrapped.decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError() from None
        # Transit decrypts with whichever version the ciphertext names: a row whose blob and master_key_id
        # disagree has been tampered with, even if transit would accept the blob.
        match = _CIPHERTEXT.match(text)
        if match is None or self._key_id(int(match.group(1))) != key_id:
            raise IntegrityError()
        return text

    def _wrapped(self, data: dict[str, Any]) -> WrappedKey:
        ciphertext = data.get("ciphertext")
        match = _CIPHERTEXT.match(ciphertext) if isinstance(ciphertext, str) and ciphertext.isascii() else None
        if match is None or ciphertext is None:
            raise KeyProviderError(f"transit key {self._mount}/{self._name} answered without a ciphertext")
        return WrappedKey(self._key_id(int(match.group(1))), ciphertext.encode("ascii"))

    @staticmethod
    def _plaintext(data: dict[str, Any]) -> bytes:
        try:
            return base64.b64decode(data["plaintext"], validate=True)
        except (KeyError, TypeError, ValueError):  # binascii.Error, and text that is not ASCII, are ValueErrors
            raise IntegrityError() from None

    def _chunked(self, operation: str, entries: list[dict[str, str]], map: MapFn) -> list[dict[str, Any]]:
        return [r for chunk in map(lambda part: self._batch(operation, part), _chunks(entries)) for r in chunk]

    def _batch(self, operation: str, entries: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One batch_input request; its results in order, or the first item's error raised."""
        url = f"/v1/{self._mount}/{operation}/{self._name}"
        adapter = self._client.adapter

        def post() -> dict[str, Any]:
            response = adapter.request("post", url, json={"batch_input": entries}, raise_exception=False)
            if isinstance(response, dict):
                return response
            try:  # a 400 that is a batch answer (some or all items failed) carries the items' own errors
                body = response.json() if response.status_code == 400 else None
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("data"), dict):
                return body
            adapter._raise_for_error("post", url, response)
            raise KeyProviderError(f"transit key {self._mount}/{self._name}: {operation} failed")

        results = self._call(operation, post).get("batch_results")
        if not isinstance(results, list) or len(results) != len(entries):
            raise KeyProviderError(f"transit key {self._mount}/{self._name}: {operation} answered "
                                   f"{0 if not isinstance(results, list) else len(results)} of {len(entries)}")
        for result in results:
            if not isinstance(result, dict):
                raise KeyProviderError(f"transit key {self._mount}/{self._name}: {operation} answered garbage")
            if result.get("error"):
                raise rejected(f"transit key {self._mount}/{self._name}", operation, str(result["error"]))
        return results

    def _read_key(self) -> dict[str, Any]:
        data = self._call("read", lambda: self._client.secrets.transit.read_key(self._name, mount_point=self._mount))
        if data.get("derived"):
            binding = "context"
        elif data.get("type") in AEAD_TYPES:
            binding = "associated_data"
        else:
            raise KeyProviderError(f"transit key {self._mount}/{self._name} is of type {_key_type(data)}: use an "
                                   f"AEAD key ({', '.join(sorted(AEAD_TYPES))}) or a derived one")
        with self._lock:
            self._binding = binding
        return data

    def _mode(self) -> str:
        """How this key binds the AAD; read once per process (a key's derived flag and type never change)."""
        with self._lock:
            binding = self._binding
        if binding is None:
            self._read_key()
            with self._lock:
                binding = self._binding
        assert binding is not None  # _read_key set it or raised
        return binding

    def _require_bound(self) -> str:
        """The binding to wrap with. A standard key: check once that the server honours associated_data (an old
        server ignores an unknown parameter, which would leave the AAD unbound)."""
        binding = self._mode()
        if binding == "context" or self._honoured:
            return binding
        sealed = self._batch("encrypt", [{"plaintext": _b64(_PROBE), binding: derivation_context(_PROBE)}])
        ciphertext = str(sealed[0].get("ciphertext"))
        # The right AAD must open the probe first: a broken answer (no ciphertext) would also fail the wrong one.
        try:
            opened = self._batch("decrypt", [{"ciphertext": ciphertext, binding: derivation_context(_PROBE)}])
            back = base64.b64decode(str(opened[0].get("plaintext", "")), validate=True)
        except (IntegrityError, binascii.Error, ValueError):
            back = b""  # a server that cannot open its own answer is misbehaving, not a sign of tampering
        if back != _PROBE:
            raise KeyProviderError(f"transit key {self._mount}/{self._name}: the server did not give the probe "
                                   "text back")
        try:
            self._batch("decrypt", [{"ciphertext": ciphertext, binding: derivation_context(_PROBE + b"\0")}])
        except IntegrityError:
            self._honoured = True
            return binding
        raise KeyProviderError(f"transit key {self._mount}/{self._name}: this server ignores associated_data, "
                               "so it would not bind the AAD: upgrade it, or use a key created with derived=true")

    def _call(self, operation: str, call: Callable[[], Any]) -> dict[str, Any]:
        key = f"transit key {self._mount}/{self._name}"
        try:
            response = call()
        except Exception as exc:
            failure = call_failure(exc, key, operation)
            if failure is None:
                raise
            error, chained = failure
            raise error from (exc if chained else None)
        if not isinstance(response, dict):  # hvac returns the raw response when a 2xx body is not JSON
            raise KeyProviderUnavailable(f"{key}: {operation}: the answer was not Vault's JSON (cut off, or a "
                                         "proxy's page); retry later")
        data = response.get("data")
        if not isinstance(data, dict):
            raise KeyProviderError(f"{key}: {operation} returned no data")
        return data


def _key_type(data: dict[str, Any]) -> str:
    kind = data.get("type")
    return kind if isinstance(kind, str) and _KEY_TYPE.fullmatch(kind) else "an unknown kind"


def _chunks(entries: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    return [entries[i:i + BATCH] for i in range(0, len(entries), BATCH)]
