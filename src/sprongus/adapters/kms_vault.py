"""HashiCorp Vault / OpenBao transit master keys: a derived transit key wraps DEKs, the AAD is the derivation context.

The client (hvac) is built by entrypoints/kms_clients/vault.py. Transit keys must be created with `derived=true`:
transit derives a per-context key with HKDF, so a wrapped DEK only unwraps under the AAD it was wrapped with. A
non-derived key silently ignores the context (the AAD would bind nothing), so this adapter refuses one.

Least-privilege policy for a key `transit/keys/NAME`: `update` on `transit/encrypt/NAME`, `transit/decrypt/NAME`
and `transit/rewrap/NAME`, `read` on `transit/keys/NAME` (the current version and the derived flag).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sprongus.domain.errors import (
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
)
from sprongus.ports.crypto import WrappedKey

if TYPE_CHECKING:
    import hvac  # type: ignore[import-untyped]

PREFIX = "vault"
_CIPHERTEXT = re.compile(r"vault:v([1-9][0-9]*):")


def derivation_context(aad: bytes) -> str:
    """The transit `context` for an AAD: a fixed-size digest, so the context never grows with key names."""
    return base64.b64encode(hashlib.sha256(b"sprongus.dek.v1\0" + aad).digest()).decode("ascii")


class VaultTransitMasterKeyProvider:
    """Wraps with the transit key's latest version, unwraps with the version named in the ciphertext.

    Raises IntegrityError for a tampered ciphertext or a wrong AAD, KeyAccessDenied (policy or token), KeyDisabled
    (a version below min_decryption_version), KeyProviderUnavailable (sealed, down, unreachable, timed out) and
    KeyProviderError otherwise.
    """

    def __init__(self, client: hvac.Client, mount: str, name: str) -> None:
        self._transit = client.secrets.transit
        self._mount, self._name = mount.strip("/"), name
        self._prefix = f"{PREFIX}:{self._mount}/{name}:v"
        self._derived_checked = False
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        return self._key_id(int(self._read_key()["latest_version"]))

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        self._require_derived()
        data = self._call("encrypt", lambda: self._transit.encrypt_data(
            self._name, plaintext=base64.b64encode(dek).decode("ascii"), context=derivation_context(aad),
            mount_point=self._mount))
        return self._wrapped(data)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        ciphertext = self._ciphertext(wrapped, key_id)
        data = self._call("decrypt", lambda: self._transit.decrypt_data(
            self._name, ciphertext=ciphertext, context=derivation_context(aad), mount_point=self._mount))
        try:
            return base64.b64decode(data["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise IntegrityError() from None

    def rewrap(self, wrapped: bytes, key_id: str, aad: bytes) -> WrappedKey:
        """Moves a wrapped DEK to the latest key version inside Vault: the DEK never leaves it in plaintext.

        Same errors as unwrap. The domain's rotate_master still unwraps and wraps through the port, which any
        provider supports; this is the transit-native path for a rotation that must not see DEKs.
        """
        ciphertext = self._ciphertext(wrapped, key_id)
        data = self._call("rewrap", lambda: self._transit.rewrap_data(
            self._name, ciphertext=ciphertext, context=derivation_context(aad), mount_point=self._mount))
        return self._wrapped(data)

    def can_unwrap(self, key_id: str) -> bool:
        return key_id.startswith(self._prefix) and key_id[len(self._prefix):].isdigit()

    def _key_id(self, version: int) -> str:
        return f"{self._prefix}{version}"

    def _ciphertext(self, wrapped: bytes, key_id: str) -> str:
        """The stored blob as transit's `vault:vN:...` text, checked against the version the row claims."""
        if not self.can_unwrap(key_id):
            raise KeyProviderError(f"master key {key_id} is not a version of the transit key {self._mount}/"
                                   f"{self._name}")
        # No derived-key check here (it costs a read per process): only wrap needs it, because only a wrap by
        # a non-derived key would leave the AAD unbound; decrypting always passes the same context.
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
        match = _CIPHERTEXT.match(ciphertext) if isinstance(ciphertext, str) else None
        if match is None or ciphertext is None:
            raise KeyProviderError(f"transit key {self._mount}/{self._name} answered without a ciphertext")
        return WrappedKey(self._key_id(int(match.group(1))), ciphertext.encode("ascii"))

    def _read_key(self) -> dict[str, Any]:
        data = self._call("read", lambda: self._transit.read_key(self._name, mount_point=self._mount))
        if not data.get("derived"):
            raise KeyProviderError(f"transit key {self._mount}/{self._name} is not derived: create it with "
                                   "derived=true so each wrapped data key is bound to its AAD")
        return data

    def _require_derived(self) -> None:
        with self._lock:
            if not self._derived_checked:
                self._read_key()
                self._derived_checked = True

    def _call(self, operation: str, call: Callable[[], Any]) -> dict[str, Any]:
        import hvac.exceptions as hv  # type: ignore[import-untyped]
        import requests

        key = f"transit key {self._mount}/{self._name}"
        try:
            response = call()
        except hv.InvalidRequest as exc:
            reason = " ".join(str(e) for e in (exc.errors or []))
            if "disallowed by policy" in reason:
                raise KeyDisabled(f"{key}: this key version is below min_decryption_version") from None
            if "encryption key not found" in reason:
                raise KeyProviderError(f"{key} does not exist") from None
            if operation in ("decrypt", "rewrap"):
                raise IntegrityError() from None
            raise KeyProviderError(f"{key}: {operation} was rejected ({reason[:200]})") from None
        except (hv.Forbidden, hv.Unauthorized) as exc:
            raise KeyAccessDenied(f"{key}: the Vault token may not {operation} (check VAULT_TOKEN and its "
                                  "policy)") from exc
        except hv.InvalidPath as exc:
            raise KeyProviderError(f"{key} does not exist (or the transit engine is not mounted there)") from exc
        except requests.exceptions.SSLError as exc:
            raise KeyProviderError(f"{key}: TLS verification of the Vault server failed (set "
                                   "SPRONGUS_KMS_CA_FILE to trust a private CA)") from exc
        except (hv.VaultDown, hv.InternalServerError, hv.BadGateway, hv.RateLimitExceeded, hv.VaultNotInitialized,
                requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise KeyProviderUnavailable(f"{key}: Vault is unavailable ({type(exc).__name__})") from exc
        except hv.VaultError as exc:
            raise KeyProviderError(f"{key}: {operation} failed ({type(exc).__name__})") from exc
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict):
            raise KeyProviderError(f"{key}: {operation} returned no data")
        return data
