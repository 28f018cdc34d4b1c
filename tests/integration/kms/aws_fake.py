"""moto's KMS server made to answer as the AWS KMS API reference says, and an operator's switch between KMS keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from moto.core.exceptions import JsonRESTError
from moto.kms import models, utils
from moto.kms.exceptions import InvalidCiphertextException
from moto.server import ThreadedMotoServer

from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.ports.crypto import MasterKeyProvider, WrappedKey


@contextmanager
def moto_kms() -> Iterator[str]:
    """A moto server on a free local port, in this process (so the patches below reach it); yields its URL."""
    with pytest.MonkeyPatch.context() as patch:
        make_moto_behave_like_aws(patch)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def make_moto_behave_like_aws(patch: pytest.MonkeyPatch) -> None:
    """moto 5 departs from the AWS KMS API reference where these tests look, so make it follow the reference:

    - Encrypt and Decrypt with a disabled key succeed (AWS: DisabledException; pending deletion:
      KMSInvalidStateException);
    - Decrypt whose KeyId is not the ciphertext's key is AccessDeniedException (AWS: IncorrectKeyException);
    - a ciphertext that names no key is AccessDeniedException (AWS: InvalidCiphertextException).
    """
    encrypt, decrypt = models.KmsBackend.encrypt, models.KmsBackend.decrypt

    def check_state(backend: Any, key_id: str) -> None:
        key = backend.keys.get(key_id)
        if key is not None and key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        if key is not None and key.key_state != "Enabled":
            raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")

    def faithful_encrypt(self: Any, key_id: str, plaintext: bytes, encryption_context: dict[str, str]) -> Any:
        check_state(self, self.any_id_to_key_id(key_id))
        return encrypt(self, key_id, plaintext, encryption_context)

    def faithful_decrypt(self: Any, ciphertext_blob: bytes, encryption_context: dict[str, str],
                         key_id: str | None = None) -> Any:
        try:
            blob_key = utils._deserialize_ciphertext_blob(ciphertext_blob).key_id
        except Exception:
            raise InvalidCiphertextException() from None
        if blob_key not in self.keys:
            raise InvalidCiphertextException()
        if key_id is not None and self.any_id_to_key_id(key_id) != blob_key:
            raise JsonRESTError("IncorrectKeyException", "The key ID in the request does not identify a KMS key "
                                "that can perform this operation.")
        check_state(self, blob_key)
        return decrypt(self, ciphertext_blob, encryption_context, key_id)

    patch.setattr(models.KmsBackend, "encrypt", faithful_encrypt)
    patch.setattr(models.KmsBackend, "decrypt", faithful_decrypt)


class KeySwitch:
    """An AWS master-key rotation as an operator does it: point SPRONGUS_KEY_PROVIDER at a new KMS key and list
    the old one in SPRONGUS_KEY_PROVIDERS_RETIRED (AWS's own rotation keeps the ARN, so it is no new key id)."""

    def __init__(self, build: Callable[[str], MasterKeyProvider], arns: list[str]) -> None:
        self._build, self.arns = build, list(arns)  # current first, then the retired ones
        self._keys = self._open()

    def _open(self) -> CompositeMasterKeyProvider:
        return CompositeMasterKeyProvider(self._build(self.arns[0]), [self._build(arn) for arn in self.arns[1:]])

    def switch_to(self, arn: str) -> None:
        self.arns.insert(0, arn)
        self._keys = self._open()

    def reopen(self) -> MasterKeyProvider:
        return KeySwitch(self._build, self.arns)

    def current_key_id(self) -> str:
        return self._keys.current_key_id()

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        return self._keys.wrap(dek, aad)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        return self._keys.unwrap(wrapped, key_id, aad)

    def can_unwrap(self, key_id: str) -> bool:
        return self._keys.can_unwrap(key_id)
