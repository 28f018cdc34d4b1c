"""MACs of the audit trail's checkpoints, with a key the database cannot read or forge.

The key is derived from the vault's value-HMAC key (`db:` keys are wrapped by the master key; `file:`, `keychain:`
and `env:` keys never reach the database), with its own context, so a checkpoint MAC can never be mistaken for a
value HMAC or an idempotency fingerprint: checkpoint key = HMAC-SHA256(value-HMAC key, CHECKPOINT_CONTEXT). The
checkpoint stores the id of the value-HMAC key, and any key the vault knows verifies (rotation keeps old keys).
"""

from __future__ import annotations

import base64
import hmac

from sprongus.domain.audit_log import CHECKPOINT_CONTEXT, AuditCheckpoint, KeyRetired
from sprongus.domain.errors import IntegrityError
from sprongus.ports import HmacKeyring


def checkpoint_key(value_hmac_key: bytes) -> bytes:
    return hmac.digest(value_hmac_key, CHECKPOINT_CONTEXT, "sha256")


def checkpoint_mac(value_hmac_key: bytes, checkpoint: AuditCheckpoint, key_id: str) -> str:
    digest = hmac.digest(checkpoint_key(value_hmac_key), checkpoint.message(key_id), "sha256")
    return base64.b64encode(digest).decode("ascii")


class CheckpointSigner:
    """The CheckpointSigner port over the container's HMAC keyring (the one that signs values)."""

    def __init__(self, keys: HmacKeyring) -> None:
        self._keys = keys

    def signing_key(self) -> str | None:
        return self._keys.current_key_id()

    def sign(self, checkpoint: AuditCheckpoint) -> AuditCheckpoint:
        key_id = self._keys.current_key_id()
        if key_id is None:  # no secret written yet: nothing signs, and `audit verify` says so
            return checkpoint
        return checkpoint.signed(key_id, checkpoint_mac(self._keys.key(key_id), checkpoint, key_id))

    def check(self, checkpoint: AuditCheckpoint) -> str | None:
        if checkpoint.key_id is None or checkpoint.mac is None:
            return "not signed"
        try:
            key = self._keys.key(checkpoint.key_id)
        except IntegrityError:
            # The vault's own (`db:`) keys are never dropped, so an unknown one is made up. A key of another
            # provider is gone when that provider was retired (values it signed were re-signed by rotate-master;
            # a checkpoint cannot be): not checkable, which `verify` notes.
            current = self._keys.current_key_id() or ""
            namespace = checkpoint.key_id.partition(":")[0]
            if namespace != "db" and namespace != current.partition(":")[0]:
                raise KeyRetired() from None
            return f"signed with key {checkpoint.key_id}, which this vault does not know (forged checkpoint)"
        expected = checkpoint_mac(key, checkpoint, checkpoint.key_id)
        if not hmac.compare_digest(expected.encode(), checkpoint.mac.encode()):
            return "its MAC does not match (forged or altered checkpoint)"
        return None
