"""Azure Key Vault (and Managed HSM) master keys: a Key Vault key wraps DEKs with RSA-OAEP-256 or AES-KW (A256KW).

The clients (azure-keyvault-keys) are built by entrypoints/kms_clients/azure.py, the only importer of this module,
so the SDK loads only when an azure:// provider is configured. The key id of every wrap is the
full key URL, version included (`azure:https://VAULT.vault.azure.net/keys/NAME/VERSION`): unwrap always asks that
exact version, so rotating the key in Azure never orphans a stored DEK.

The AAD is NOT bound to the wrapped DEK: Key Vault's wrapKey takes no associated data, and an RSA public key lets
anyone wrap anything. The value stays bound to its place all the same, because the data cipher (AES-256-GCM)
authenticates the AAD: a DEK moved to another row unwraps, and then the value fails to decrypt (IntegrityError).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.keyvault.keys.crypto import KeyWrapAlgorithm

from sprongus.adapters.kms_answers import code_word, server_words
from sprongus.domain.errors import (
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
    SprongusError,
)
from sprongus.ports.crypto import WrappedKey

if TYPE_CHECKING:
    from azure.keyvault.keys import KeyClient, KeyVaultKey
    from azure.keyvault.keys.crypto import CryptographyClient

AES_KW_DEK_BYTES = 40
PREFIX = "azure"
SYMMETRIC = ("oct", "oct-HSM")
CryptoFactory = Callable[["KeyVaultKey | str"], "CryptographyClient"]


@dataclass(frozen=True)
class _Version:
    key_id: str  # the full versioned key URL
    symmetric: bool  # oct / oct-HSM: A256KW, always done by the service
    crypto: CryptographyClient | None  # RSA: the SDK's client (local wrap when it holds the public key)
    fetched: float


class AzureKeyVaultMasterKeyProvider:
    """Wraps with the key's current (or pinned) version, unwraps with the version in the key id.

    Raises IntegrityError when Key Vault rejects a wrapped DEK, KeyAccessDenied (credential, RBAC or access policy),
    KeyDisabled (a disabled or expired key), KeyProviderUnavailable (timeouts, throttling, outages) and
    KeyProviderError otherwise (unknown key or version, ...).

    An unpinned key follows Key Vault's current version, looked up at most every `refresh_seconds` (or on
    `refresh()`), which needs the keys/get permission. Without it, pin a version in the URI: the SDK then wraps
    remotely (wrapKey permission only); oct-HSM keys need keys/get, since their type decides the algorithm.
    """

    def __init__(self, keys: KeyClient, crypto: CryptoFactory, name: str, version: str | None = None, *,
                 vault_aliases: tuple[str, ...] = (), refresh_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys, self._crypto = keys, crypto
        self._name, self._pinned = name, version
        self._vault_url = keys.vault_url.rstrip("/")
        # Key ids name the vault as Key Vault does; an endpoint override (emulator, private address) may differ.
        self._authorities = {_authority(self._vault_url), *(_authority(f"https://{a}") for a in vault_aliases)}
        self._refresh, self._clock = refresh_seconds, clock
        self._current: _Version | None = None
        self._lock = threading.Lock()

    def current_key_id(self) -> str:
        return f"{PREFIX}:{self._current_version().key_id}"

    def refresh(self) -> None:
        """Look the current key version up again on next use (after a key rotation in Azure)."""
        with self._lock:
            self._current = None

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        version = self._current_version()
        if version.symmetric:
            result = self._rest(version.key_id, "wrapkey", dek)
            return WrappedKey(self._own_version(result[0], "wrapKey"), result[1])
        assert version.crypto is not None
        try:
            wrapped = version.crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek)
        except (AzureError, ValueError) as exc:
            self._fail(exc, "wrapKey", version.key_id)
        return WrappedKey(self._own_version(wrapped.key_id, "wrapKey"), wrapped.encrypted_key)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        version_name = self._version_of(key_id)
        if version_name is None:
            raise KeyProviderError(f"master key {key_id} is not a version of the Azure key {self._name}")
        # Always through the REST API at the configured vault URL: a CryptographyClient made from a KeyVaultKey
        # talks to the host in the key's kid, which bypasses an endpoint override (private endpoint, emulator).
        # The algorithm follows from the blob, so a reveal costs one call and no key lookup: AES-KW of a 32-byte
        # DEK is 40 bytes; RSA-OAEP output is the modulus size (256 bytes and up).
        alg = "A256KW" if len(wrapped) == AES_KW_DEK_BYTES else KeyWrapAlgorithm.rsa_oaep_256.value
        return self._rest(f"{self._vault_url}/keys/{self._name}/{version_name}", "unwrapkey", wrapped, alg)[1]

    def can_unwrap(self, key_id: str) -> bool:
        return self._version_of(key_id) is not None

    def _own_version(self, kid: object, operation: str) -> str:
        """The key id for a `kid` Key Vault answered, checked: it is stored with every wrapped DEK and printed by
        `keys status`, so a kid that is not a version of this key (another key, escape codes) is not taken."""
        key_id = f"{PREFIX}:{kid}"
        if not isinstance(kid, str) or self._version_of(key_id) is None:
            raise KeyProviderUnavailable(f"Azure Key Vault answered {operation} for {self._name} with a key id that "
                                         "is not a version of it (not Key Vault's answer); retry later")
        return key_id

    def _version_of(self, key_id: str) -> str | None:
        if not key_id.startswith(f"{PREFIX}:"):
            return None
        url = urlsplit(key_id[len(PREFIX) + 1:])
        parts = url.path.split("/")
        if (url.scheme != "https" or _authority(url.geturl()) not in self._authorities or len(parts) != 4
                or parts[:2] != ["", "keys"] or parts[2].lower() != self._name.lower() or not parts[3].isalnum()):
            return None
        return parts[3]

    def _current_version(self) -> _Version:
        with self._lock:
            current = self._current
        if current is None or self._clock() - current.fetched >= self._refresh:
            current = self._load(self._pinned)
            with self._lock:
                self._current = current
        return current

    def _load(self, version: str | None) -> _Version:
        """Fetch a key version: its type picks the algorithm, and the SDK can wrap locally with its public key."""
        url = f"{self._vault_url}/keys/{self._name}" + (f"/{version}" if version else "")
        try:
            key = self._keys.get_key(self._name, version)
        except (AzureError, ValueError) as exc:
            mapped = self._mapped(exc, "get", url)
            if type(mapped) is KeyAccessDenied and isinstance(exc, HttpResponseError):
                if version:  # no keys/get permission: the SDK wraps and unwraps remotely with the version's URL
                    return _Version(url, False, self._crypto(url), self._clock())
                mapped = KeyAccessDenied(f"{mapped}; or pin the key version in the URI "
                                         "(azure://VAULT/keys/NAME/VERSION), which needs no keys/get")
            raise mapped from exc
        if key.properties.enabled is False:
            # Key Vault still accepts wrapKey on a disabled key; those DEKs could not be unwrapped until re-enabled.
            raise KeyDisabled(f"Azure key {url} is disabled")
        self._own_version(key.id, "get")  # it becomes the current key id
        symmetric = getattr(key.key_type, "value", key.key_type) in SYMMETRIC
        return _Version(key.id, symmetric, None if symmetric else self._crypto(key), self._clock())

    def _rest(self, key_id: str, operation: str, value: bytes, alg: str = "A256KW") -> tuple[str, bytes]:
        """wrapkey / unwrapkey through the REST API. For AES-KW because the SDK's CryptographyClient would wrap an
        oct key LOCALLY with a random key, since Key Vault never returns symmetric key material
        (azure-keyvault-keys 4.11); for every unwrap because it must reach the endpoint, not the kid's host."""
        path = urlsplit(key_id).path
        request = HttpRequest("POST", f"{path}/{operation}", json={"alg": alg, "value": _b64url(value)})
        try:
            response = self._keys.send_request(request)
            response.raise_for_status()
            body = response.json()
            return str(body["kid"]), _unb64url(str(body["value"]))
        except AzureError as exc:
            self._fail(exc, "unwrapKey" if operation == "unwrapkey" else "wrapKey", key_id)
        except (KeyError, TypeError, ValueError) as exc:  # a 200 that is not Key Vault's JSON: a proxy's page
            raise KeyProviderUnavailable(f"Azure Key Vault answered {operation} for {key_id} without a result (not "
                                         "Key Vault's answer, or cut off); retry later") from exc

    def _fail(self, exc: AzureError | ValueError, operation: str, key_url: str) -> NoReturn:
        mapped = self._mapped(exc, operation, key_url)
        if isinstance(mapped, IntegrityError):
            raise mapped from None  # one vague error for every failed unwrap, like Fernet's InvalidToken
        raise mapped from exc

    def _mapped(self, exc: AzureError | ValueError, operation: str, key_url: str) -> SprongusError:
        where = f"Azure Key Vault {operation} with {key_url}"
        status = exc.status_code if isinstance(exc, HttpResponseError) else None
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            return KeyProviderError(f"{where}: no such key or version")
        if isinstance(exc, ClientAuthenticationError) and status is None:
            return KeyAccessDenied(f"{where}: the Azure credential could not get a token ({type(exc).__name__})")
        if isinstance(exc, DecodeError) or (isinstance(exc, HttpResponseError) and status is None):
            # A 2xx that is not Key Vault's JSON (a proxy's page), or an answer cut off (IncompleteReadError, no
            # status): worth a retry, and never a refused ciphertext.
            return KeyProviderUnavailable(f"{where}: Key Vault's answer was cut off or was not Key Vault's "
                                          f"({type(exc).__name__}); retry later")
        if isinstance(exc, HttpResponseError):
            code, inner = _error_codes(exc)
            if status in (401, 403):
                if inner == "KeyDisabled" or "disabled" in (exc.message or "").lower():
                    return KeyDisabled(f"{where}: the key is disabled")
                return KeyAccessDenied(f"{where}: access denied ({inner or code or status}); the identity needs "
                                       "the key's get, wrapKey and unwrapKey permissions")
            if status == 400 and operation == "unwrapKey" and code is not None:  # Key Vault's own JSON refusal
                return IntegrityError()
            if status in (408, 429) or (status or 0) >= 500:
                return KeyProviderUnavailable(f"{where}: Key Vault is unavailable (HTTP {status})")
            return KeyProviderError(f"{where}: HTTP {status} {code or ''}".rstrip())
        if isinstance(getattr(exc, "inner_exception", None), requests.exceptions.SSLError):
            return KeyProviderError(f"{where}: TLS verification of the Key Vault endpoint failed (set "
                                    "SPRONGUS_KMS_CA_FILE to trust a private CA)")
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            return KeyProviderUnavailable(f"{where}: Key Vault is unreachable or timed out ({type(exc).__name__})")
        if isinstance(exc, ValueError):
            if "useable" in str(exc) or "expired" in str(exc):  # the SDK checks nbf/exp before a local wrap
                return KeyDisabled(f"{where}: the key is outside its validity period")
            if "challenge" in str(exc):  # the SDK refused a bearer challenge naming a domain other than the vault's
                return KeyProviderError(f"{where}: the endpoint's authentication challenge names another domain "
                                        "than the vault's (check SPRONGUS_KMS_ENDPOINT and any proxy)")
            return KeyProviderError(f"{where}: {server_words(exc)}")  # the SDK's text quotes what the server sent
        return KeyProviderError(f"{where}: {type(exc).__name__}")


def _error_codes(exc: HttpResponseError) -> tuple[str | None, str | None]:
    """Key Vault's error code and inner code (`ForbiddenByRbac`, `KeyDisabled`, ...), if the body has them spelt as
    codes (kms_answers.code_word: they are repeated in messages)."""
    try:
        error: dict[str, Any] = json.loads(exc.response.text() if exc.response is not None else "")["error"]
        inner = error.get("innererror") or {}
        return code_word(error.get("code")), code_word(inner.get("code"))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None, None


def _authority(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return host if parts.port in (None, 443) else f"{host}:{parts.port}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
