"""AWS KMS master keys: a symmetric KMS key wraps DEKs, the AAD bound as encryption context.

AWS rotates a key's backing material internally and keeps every old one for Decrypt, so the key ARN is the whole
key id: `aws:arn:aws:kms:REGION:ACCOUNT:key/ID`. Switching to another key is a provider switch (the old URI goes to
SPRONGUS_KEY_PROVIDERS_RETIRED). botocore is imported only to classify a failure; the client is built by
entrypoints/kms_clients/aws.py.

rotate-master re-wraps with ReEncrypt (one call per DEK, several in flight; the DEK never leaves KMS), from any key
of the same region (the retired one after a switch) to this one, with the same encryption context. That needs
kms:ReEncryptFrom on the source key and kms:ReEncryptTo on this one; a key policy that only grants Encrypt and
Decrypt still works: refused once, the rotation decrypts and encrypts instead (two calls per DEK).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Sequence
from typing import Any

from sprongus.adapters.kms_answers import code_word
from sprongus.domain.errors import (
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
)
from sprongus.ports.crypto import MapFn, WrappedKey

PREFIX = "aws"
CONTEXT_KEY = "sprongus:aad"  # encryption-context values are strings, so the AAD travels as base64

# A key ARN as KMS writes it (an alias resolves to one): partition, region, account, key id or mrk- id.
_KEY_ARN = re.compile(r"arn:aws[a-z-]{0,16}:kms:[a-z0-9-]{1,32}:[0-9]{12}:key/[A-Za-z0-9-]{1,128}")
_INTEGRITY = {"InvalidCiphertextException", "IncorrectKeyException"}
_DENIED = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
           "ExpiredTokenException", "IncompleteSignature", "InvalidClientTokenId"}
_DISABLED = {"DisabledException", "KMSInvalidStateException"}
_UNAVAILABLE = {"KeyUnavailableException", "DependencyTimeoutException", "KMSInternalException",
                "ThrottlingException", "ServiceUnavailableException", "InternalFailure"}


class AwsKmsMasterKeyProvider:
    """Wraps and unwraps with one KMS key. Raises IntegrityError when KMS rejects a ciphertext or its context,
    KeyAccessDenied, KeyDisabled, KeyProviderUnavailable or KeyProviderError otherwise."""

    def __init__(self, client: Any, key_arn: str) -> None:
        self._client = client  # a boto3 "kms" client (boto3 ships no types)
        self._key_arn = key_arn
        self._region = _region(key_arn)
        self._reencrypt_denied = False  # ReEncrypt refused once (a policy without it): decrypt + encrypt instead
        self._lock = threading.Lock()

    @classmethod
    def for_key(cls, client: Any, key: str) -> AwsKmsMasterKeyProvider:
        """A provider for a key ARN, or for the key an alias points to now (resolved once, here)."""
        if ":key/" in key:
            return cls(client, key)
        metadata = _answer(_call(client, "describe_key", key, KeyId=key), "describe_key", "KeyMetadata")["KeyMetadata"]
        arn = metadata.get("Arn") if isinstance(metadata, dict) else None
        if not isinstance(arn, str) or not _KEY_ARN.fullmatch(arn):  # it becomes the key id, stored and printed
            raise KeyProviderUnavailable(f"AWS KMS describe_key of {key}: the answer named no key ARN; retry later")
        return cls(client, arn)

    def current_key_id(self) -> str:
        return f"{PREFIX}:{self._key_arn}"

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        response = _answer(_call(self._client, "encrypt", self._key_arn, KeyId=self._key_arn, Plaintext=dek,
                                 EncryptionContext=_context(aad)), "encrypt", "KeyId", "CiphertextBlob")
        key_id = f"{PREFIX}:{response['KeyId']}"
        if key_id != self.current_key_id():
            raise KeyProviderError(f"AWS KMS encrypted with another key, not {self._key_arn}")
        return WrappedKey(key_id, bytes(response["CiphertextBlob"]))

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        if not self.can_unwrap(key_id):
            raise KeyProviderError(f"master key {key_id} is not the aws key {self._key_arn}")
        # KeyId pins the key: a blob made by another key is IncorrectKeyException, not a decrypt under that key.
        response = _answer(_call(self._client, "decrypt", self._key_arn, CiphertextBlob=wrapped, KeyId=self._key_arn,
                                 EncryptionContext=_context(aad)), "decrypt", "KeyId", "Plaintext")
        if response["KeyId"] != self._key_arn:
            raise IntegrityError()
        return bytes(response["Plaintext"])

    def can_unwrap(self, key_id: str) -> bool:
        return key_id == self.current_key_id()

    def can_rewrap(self, key_id: str) -> bool:
        """This key and any other key of its region: ReEncrypt moves a DEK between them inside KMS."""
        if not key_id.startswith(f"{PREFIX}:") or ":key/" not in key_id:
            return False
        region = _region(key_id[len(PREFIX) + 1:])
        return region is not None and region == self._region

    def rewrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[WrappedKey]:
        return map(lambda item: self._reencrypt(*item), items)

    def wrap_many(self, items: Sequence[tuple[bytes, bytes]], map: MapFn) -> list[WrappedKey]:
        return map(lambda item: self.wrap(*item), items)

    def unwrap_many(self, items: Sequence[tuple[bytes, str, bytes]], map: MapFn) -> list[bytes]:
        return map(lambda item: self.unwrap(*item), items)

    def _reencrypt(self, wrapped: bytes, key_id: str, aad: bytes) -> WrappedKey:
        if not self.can_rewrap(key_id):
            raise KeyProviderError(f"master key {key_id} is not an aws key of {self._region}")
        source = key_id[len(PREFIX) + 1:]
        with self._lock:
            denied = self._reencrypt_denied
        if not denied:
            try:
                response = _answer(_call(self._client, "re_encrypt", source, CiphertextBlob=wrapped,
                                         SourceKeyId=source, SourceEncryptionContext=_context(aad),
                                         DestinationKeyId=self._key_arn, DestinationEncryptionContext=_context(aad)),
                                   "re_encrypt", "SourceKeyId", "KeyId", "CiphertextBlob")
            except KeyAccessDenied:
                with self._lock:
                    self._reencrypt_denied = True
            else:
                if response["SourceKeyId"] != source or response["KeyId"] != self._key_arn:
                    raise IntegrityError()
                return WrappedKey(self.current_key_id(), bytes(response["CiphertextBlob"]))
        dek = _answer(_call(self._client, "decrypt", source, CiphertextBlob=wrapped, KeyId=source,
                            EncryptionContext=_context(aad)), "decrypt", "KeyId", "Plaintext")
        if dek["KeyId"] != source:
            raise IntegrityError()
        return self.wrap(bytes(dek["Plaintext"]), aad)


def _region(arn: str) -> str | None:
    parts = arn.split(":")
    return ":".join(parts[1:4]) if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "kms" else None


def _context(aad: bytes) -> dict[str, str]:
    return {CONTEXT_KEY: base64.b64encode(aad).decode("ascii")}


def _answer(response: Any, op: str, *fields: str) -> Any:
    """botocore hands back `{}` for a 200 that is not KMS's JSON: a body cut off mid-answer, or a proxy's page.
    That is an outage to retry, not a ciphertext KMS refused (a KeyId that is present and wrong still is)."""
    if not isinstance(response, dict) or not all(name in response for name in fields):
        raise KeyProviderUnavailable(f"AWS KMS {op}: the answer was cut off or was not KMS's; retry later")
    return response


def _call(client: Any, op: str, key: str, **params: Any) -> Any:
    try:
        return getattr(client, op)(**params)
    except Exception as exc:
        error = _domain_error(exc, op, key)
        if error is None:
            raise
        if isinstance(error, IntegrityError):
            raise error from None  # like Fernet: nothing about why
        raise error from exc


def _domain_error(exc: Exception, op: str, key: str) -> Exception | None:
    from botocore import exceptions as boto

    where = f"AWS KMS {op} with {key}"
    if isinstance(exc, boto.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _INTEGRITY and op in ("decrypt", "re_encrypt"):
            return IntegrityError()
        if code in _DENIED:
            return KeyAccessDenied(f"{where} was refused ({code}): allow kms:Encrypt, kms:Decrypt (kms:ReEncrypt* "
                                   "for rotate-master, kms:DescribeKey for an alias) to the service identity")
        if code in _DISABLED:
            return KeyDisabled(f"{where}: the key is disabled, pending deletion or otherwise unusable ({code})")
        if code in _UNAVAILABLE:
            return KeyProviderUnavailable(f"{where} failed: unavailable, overloaded or too slow ({code}); retry later")
        if code == "NotFoundException":
            return KeyProviderError(f"{where}: the key does not exist (check SPRONGUS_KEY_PROVIDER)")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "RequestTimeoutException" or status in (408, 429) or (status or 0) >= 500:
            # A gateway's 502/504 or a 503 with no KMS error code: botocore names the error by its status.
            return KeyProviderUnavailable(f"{where} failed: unavailable or too slow (HTTP {status}); retry later")
        shown = code_word(code) or (f"HTTP {code}" if code.isdigit() and len(code) == 3 else "an unknown error")
        return KeyProviderError(f"{where} failed ({shown})")  # botocore names a code-less error by its status
    if isinstance(exc, boto.ParamValidationError) and op in ("decrypt", "re_encrypt"):
        return IntegrityError()  # e.g. an empty blob: not a ciphertext KMS could ever have made
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError):
        return KeyAccessDenied(f"{where}: no usable AWS credentials ({type(exc).__name__})")
    if isinstance(exc, boto.SSLError):
        return KeyProviderError(f"{where}: TLS failed; check SPRONGUS_KMS_CA_FILE and the endpoint")
    if isinstance(exc, boto.ConnectionError | boto.HTTPClientError):
        return KeyProviderUnavailable(f"{where} failed: unreachable or too slow ({type(exc).__name__}); retry later")
    if isinstance(exc, boto.BotoCoreError):
        return KeyProviderError(f"{where} failed ({type(exc).__name__})")
    if isinstance(exc, ValueError | TypeError | AttributeError | KeyError | RecursionError):
        # botocore's parser on an answer of the wrong shape (a list for KMS's object, a number for its error code)
        return KeyProviderUnavailable(f"{where}: the answer was not KMS's (malformed); retry later")
    return None
