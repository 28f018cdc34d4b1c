from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sprongus.adapters.random_os import OsRandomSource
from sprongus.domain.errors import IntegrityError
from sprongus.ports.random import RandomSource


class AesGcmDataCipher:
    """AES-256-GCM with a fresh random 96-bit nonce per encryption. Raises IntegrityError on any bad tag."""

    alg = "AES-256-GCM"
    nonce_bytes = 12

    def __init__(self, random: RandomSource | None = None) -> None:
        self._random = random or OsRandomSource()

    def new_key(self) -> bytes:
        return self._random.bytes(32)

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = self._random.bytes(self.nonce_bytes)
        return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)

    def decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError, TypeError):
            raise IntegrityError() from None
