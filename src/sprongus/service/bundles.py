"""Builds and opens `sprongus.bundle.v1` documents with the service's envelope and master key."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sprongus.domain import bundle as fmt
from sprongus.domain.envelope import aad_for, checksum
from sprongus.domain.errors import IntegrityError, ValidationError
from sprongus.domain.import_item import ImportItem
from sprongus.domain.records import SecretRecord
from sprongus.domain.times import utc_iso
from sprongus.domain.values import SecretValue
from sprongus.service.deps import ServiceDeps
from sprongus.service.sealing import sealed_of


class BundleCodec:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps

    def build(self, records: list[SecretRecord], passphrase: SecretValue | None) -> dict[str, Any]:
        envelope = self._d.sealer.envelope
        for record in records:  # a rotten row must fail here, not on the far side of a migration
            if checksum(sealed_of(record), aad_for(record.scope, record.key, record.version)) != record.checksum:
                raise IntegrityError(f"secret {record.key} in {record.scope} failed its checksum; not exported")
        items = [fmt.BundleItem(r.scope, r.key, r.version, dict(r.meta), sealed_of(r)) for r in records]
        if passphrase is None:
            bundle_key = self._d.random.bytes(32)
            wrapped = envelope.wrap_key(bundle_key, fmt.BUNDLE_KEY_AAD)
            protection: dict[str, Any] = {"type": "master-key", "masterKeyId": wrapped.master_key_id,
                                          "wrappedKey": fmt.b64(wrapped.blob)}
            mac_key = bundle_key
        else:
            salt = self._d.random.bytes(16)
            protection = {"type": "passphrase", "kdf": "scrypt", "salt": fmt.b64(salt), "n": fmt.SCRYPT_N,
                          "r": fmt.SCRYPT_R, "p": fmt.SCRYPT_P}
            mac_key, wrap_key = fmt.scrypt_keys(passphrase.encode(), salt, fmt.SCRYPT_N, fmt.SCRYPT_R, fmt.SCRYPT_P)
            items = self._d.pool.map(lambda item: self._rewrap_for_passphrase(item, wrap_key), items)
        doc: dict[str, Any] = {"format": fmt.BUNDLE_FORMAT, "createdAt": utc_iso(self._d.clock.now()),
                               "protection": protection, "count": len(items),
                               "items": [fmt.item_to_json(item) for item in items]}
        doc["mac"] = fmt.document_mac(mac_key, doc)
        return doc

    def _rewrap_for_passphrase(self, item: fmt.BundleItem, wrap_key: bytes) -> fmt.BundleItem:
        aad = aad_for(item.scope, item.key, item.version)
        sealed = self._d.sealer.envelope.rewrap_under(item.sealed, aad, wrap_key, fmt.PASSPHRASE_KEY_ID)
        return replace(item, sealed=sealed)

    def _open_item(self, item: fmt.BundleItem, wrap_key: bytes | None) -> ImportItem:
        aad = aad_for(item.scope, item.key, item.version)
        # The document MAC and the AEAD authenticate the value; the source's value HMAC key may not exist here.
        sealed = replace(item.sealed, hmac=None)
        envelope = self._d.sealer.envelope
        value = envelope.open(sealed, aad) if wrap_key is None else envelope.open_under(sealed, aad, wrap_key)
        return ImportItem(item.scope, item.key, value, item.meta)

    def open(self, doc: object, passphrase: SecretValue | None) -> list[ImportItem]:
        protection = fmt.protection_of(doc)
        assert isinstance(doc, dict)
        wrap_key = None
        if protection["type"] == "master-key":
            blob = fmt.unb64(protection.get("wrappedKey"), "bundle.protection.wrappedKey")
            key_id = protection.get("masterKeyId")
            if not isinstance(key_id, str):
                raise ValidationError("bundle.protection.masterKeyId", "must be text")
            mac_key = self._d.sealer.envelope.unwrap_key(blob, key_id, fmt.BUNDLE_KEY_AAD)
        else:
            if passphrase is None:
                raise ValidationError("passphrase", "this bundle is protected by a passphrase")
            salt, n, r, p = fmt.scrypt_params(protection)
            mac_key, wrap_key = fmt.scrypt_keys(passphrase.encode(), salt, n, r, p)
        fmt.check_document_mac(mac_key, doc)
        if doc.get("count") != len(doc["items"]):
            raise IntegrityError()
        parsed = [fmt.item_from_json(raw, f"bundle.items[{i}]") for i, raw in enumerate(doc["items"])]
        # Each item's DEK is unwrapped by the master key (a KMS call): in parallel, in order.
        return self._d.pool.map(lambda item: self._open_item(item, wrap_key), parsed)
