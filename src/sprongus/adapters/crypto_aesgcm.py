from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sprongus.domain.errors import IntegrityError

NONCE_BYTES = 12


class AesGcmDataCipher:
    """AES-256-GCM with a fresh random 96-bit nonce per encryption. Raises IntegrityError on any bad tag."""

    alg = "AES-256-GCM"

    def new_key(self) -> bytes:
        return AESGCM.generate_key(bit_length=256)

    def encrypt(self, key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)

    def decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError, TypeError):
            raise IntegrityError() from None
