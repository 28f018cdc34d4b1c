"""Google Cloud KMS master keys: a symmetric CryptoKey wraps DEKs, every call checked end to end with CRC32C.

The SDK (google-cloud-kms, google-crc32c) is imported only when a call is made; the client is built by
entrypoints/kms_clients/gcp.py. A CRC32C mismatch means the request or response was damaged in transit, not that
stored data was tampered with, so it is KeyProviderUnavailable (retry), never IntegrityError: an operator running
`verify` must not be told a healthy vault is corrupt because of one bad packet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sprongus.domain.errors import (
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
)
from sprongus.ports.crypto import BULK_WORK, WrappedKey

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud.kms import KeyManagementServiceClient

PREFIX = "gcp"
_PROBE = b"sprongus:current-key-probe"


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


class GcpKmsMasterKeyProvider:
    """Wraps with the CryptoKey's primary version, unwraps with whichever version made the blob.

    Raises IntegrityError when KMS rejects a ciphertext or AAD, KeyAccessDenied, KeyDisabled, KeyProviderUnavailable
    (timeouts, outages, corrupted responses) or KeyProviderError otherwise.
    """

    def __init__(self, client: KeyManagementServiceClient, key_name: str, timeout: float,
                 retry: Retry | None = None, bulk_retry: Retry | None = None) -> None:
        self._client = client
        self._key_name = key_name
        self._versions = f"{PREFIX}:{key_name}/cryptoKeyVersions/"
        self._timeout = timeout
        self._retry = retry  # always passed: the SDK's default retries for up to 60 s
        self._bulk_retry = bulk_retry or retry  # in rotate-master (ports.crypto.BULK_WORK): quota refusals too

    def current_key_id(self) -> str:
        # The primary version can change at any time, and the least-privilege role (Encrypter/Decrypter) may not
        # read key metadata, so ask the key itself: encrypt a throwaway value and see which version answered.
        return self.wrap(_PROBE, _PROBE).master_key_id

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        response = self._call("encrypt", {
            "name": self._key_name, "plaintext": dek, "additional_authenticated_data": aad,
            "plaintext_crc32c": _crc32c(dek), "additional_authenticated_data_crc32c": _crc32c(aad)})
        if not (response.verified_plaintext_crc32c and response.verified_additional_authenticated_data_crc32c
                and response.ciphertext_crc32c == _crc32c(response.ciphertext)):
            raise self._corrupted("encrypt")
        key_id = f"{PREFIX}:{response.name}"
        if not self.can_unwrap(key_id):
            raise KeyProviderError(f"Cloud KMS encrypted with another key, not a version of {self._key_name}")
        return WrappedKey(key_id, bytes(response.ciphertext))

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        if not self.can_unwrap(key_id):
            raise KeyProviderError(f"master key {key_id} is not a version of the gcp key {self._key_name}")
        # Decrypt names the CryptoKey: Cloud KMS reads the version from the ciphertext itself.
        response = self._call("decrypt", {
            "name": self._key_name, "ciphertext": wrapped, "additional_authenticated_data": aad,
            "ciphertext_crc32c": _crc32c(wrapped), "additional_authenticated_data_crc32c": _crc32c(aad)})
        if response.plaintext_crc32c != _crc32c(response.plaintext):
            raise self._corrupted("decrypt")
        return bytes(response.plaintext)

    def can_unwrap(self, key_id: str) -> bool:
        return key_id.startswith(self._versions) and key_id[len(self._versions):].isdigit()

    def _call(self, op: str, request: dict[str, Any]) -> Any:
        method = self._client.encrypt if op == "encrypt" else self._client.decrypt
        try:
            return method(request=request, retry=self._bulk_retry if BULK_WORK.get() else self._retry,
                          timeout=self._timeout)
        except Exception as exc:
            error = self._domain_error(exc, op)
            if error is None:
                raise
            if isinstance(error, IntegrityError):
                raise error from None  # like Fernet: nothing about why
            raise error from exc

    def _corrupted(self, op: str) -> KeyProviderUnavailable:
        return KeyProviderUnavailable(f"Cloud KMS {op} with {self._key_name}: the response failed its CRC32C "
                                      "check (damaged in transit); retry")

    def _domain_error(self, exc: Exception, op: str) -> Exception | None:
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        where = f"Cloud KMS {op} with {self._key_name}"
        if isinstance(exc, api.InvalidArgument) and op == "decrypt":
            return IntegrityError()
        if isinstance(exc, api.PermissionDenied | api.Unauthenticated | auth.RefreshError):
            return KeyAccessDenied(f"{where} was refused ({type(exc).__name__}): grant the service identity "
                                   "roles/cloudkms.cryptoKeyEncrypterDecrypter on the key")
        if isinstance(exc, api.FailedPrecondition):
            return KeyDisabled(f"{where}: the key version is disabled, scheduled for destruction or destroyed")
        if isinstance(exc, api.DeadlineExceeded | api.ServiceUnavailable | api.RetryError | api.ResourceExhausted
                      | api.InternalServerError | api.Aborted | api.Unknown | api.Cancelled | auth.TransportError):
            # UNKNOWN and CANCELLED: how gRPC reports a reset stream or a call cut off on the way.
            why = type(exc).__name__
            if isinstance(exc, api.RetryError) and exc.cause is not None:  # what kept failing: a quota refusal, ...
                why = f"{type(exc.cause).__name__}, retried until the timeout"
            return KeyProviderUnavailable(f"{where} failed: unreachable, overloaded, over quota or too slow "
                                          f"({why}); retry later")
        if isinstance(exc, api.NotFound):
            return KeyProviderError(f"{where}: the key does not exist (check SPRONGUS_KEY_PROVIDER)")
        if isinstance(exc, api.GoogleAPIError):
            return KeyProviderError(f"{where} failed ({type(exc).__name__})")
        return None
