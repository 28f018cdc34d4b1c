"""Builds and opens `sprongus.bundle.v1` documents with the service's envelope and master key."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sprongus.domain import bundle as fmt
from sprongus.domain.envelope import aad_for, checksum
from sprongus.domain.errors import (
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
    ValidationError,
)
from sprongus.domain.import_item import ImportItem
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope
from sprongus.domain.times import utc_iso
from sprongus.domain.values import SecretValue
from sprongus.service.deps import ServiceDeps
from sprongus.service.sealing import sealed_of


@dataclass(frozen=True)
class ParsedBundle:
    """A bundle document checked for shape only: nothing in it is authenticated until `BundleCodec.open`."""

    doc: dict[str, Any]
    protection: dict[str, Any]
    items: list[fmt.BundleItem]
    history: bool = False  # several versions per secret, oldest first (`--all-versions`)

    @property
    def places(self) -> list[tuple[Scope, str]]:
        """One place per item; a bundle with history names each secret once (its versions share it)."""
        places = [(item.scope, item.key) for item in self.items]
        return list(dict.fromkeys(places)) if self.history else places


@dataclass(frozen=True, slots=True)
class OpenedItem:
    """A bundle item decrypted: its value and meta, and the version number it had at the source."""

    item: ImportItem
    version: int


class BundleCodec:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps

    def build(self, records: list[SecretRecord], passphrase: SecretValue | None,
              history: bool = False) -> dict[str, Any]:
        """`records` in document order; with `history`, each secret's versions oldest first, its current last."""
        envelope = self._d.sealer.envelope
        for record in records:  # a rotten row must fail here, not on the far side of a migration
            if record.defect or checksum(sealed_of(record), aad_for(record.scope, record.key,
                                                                   record.version)) != record.checksum:
                raise IntegrityError(f"secret {record.key} in {record.scope} failed its checksum; not exported")
        items = [fmt.BundleItem(r.scope, r.key, r.version, dict(r.meta), sealed_of(r)) for r in records]
        if passphrase is None:
            self._d.sealer.before_key_use()
            bundle_key = self._d.random.bytes(32)
            wrapped = envelope.wrap_key(bundle_key, fmt.BUNDLE_KEY_AAD)
            self._d.sealer.confirm(wrapped.master_key_id)
            protection: dict[str, Any] = {"type": "master-key", "masterKeyId": wrapped.master_key_id,
                                          "wrappedKey": fmt.b64(wrapped.blob)}
            mac_key = bundle_key
        else:
            salt = self._d.random.bytes(16)
            protection = {"type": "passphrase", "kdf": "scrypt", "salt": fmt.b64(salt), "n": fmt.SCRYPT_N,
                          "r": fmt.SCRYPT_R, "p": fmt.SCRYPT_P}
            mac_key, wrap_key = fmt.scrypt_keys(passphrase.encode(), salt, fmt.SCRYPT_N, fmt.SCRYPT_R, fmt.SCRYPT_P)
            deks = self._deks(items)  # the master-key unwraps, in bulk where the provider can
            items = [self._rewrap_for_passphrase(item, wrap_key, dek) for item, dek in zip(items, deks, strict=True)]
        doc: dict[str, Any] = {"format": fmt.BUNDLE_FORMAT, "createdAt": utc_iso(self._d.clock.now()),
                               "protection": protection, "count": len(items),
                               "items": [fmt.item_to_json(item) for item in items]}
        if history:  # only then: a bundle without history stays the document earlier releases read
            doc["history"] = True
        doc["mac"] = fmt.document_mac(mac_key, doc)
        return doc

    def _deks(self, items: list[fmt.BundleItem]) -> list[bytes]:
        pairs = [(item.sealed, aad_for(item.scope, item.key, item.version)) for item in items]
        return self._d.sealer.envelope.unwrap_deks(pairs, self._d.pool.map)

    def _rewrap_for_passphrase(self, item: fmt.BundleItem, wrap_key: bytes, dek: bytes) -> fmt.BundleItem:
        aad = aad_for(item.scope, item.key, item.version)
        sealed = self._d.sealer.envelope.rewrap_under(item.sealed, aad, wrap_key, fmt.PASSPHRASE_KEY_ID, dek=dek)
        return replace(item, sealed=sealed)

    def _open_item(self, item: fmt.BundleItem, wrap_key: bytes | None, dek: bytes | None) -> OpenedItem:
        aad = aad_for(item.scope, item.key, item.version)
        # The document MAC and the AEAD authenticate the value; the source's value HMAC key may not exist here.
        sealed = replace(item.sealed, hmac=None)
        envelope = self._d.sealer.envelope
        value = envelope.open(sealed, aad, dek=dek) if wrap_key is None else envelope.open_under(sealed, aad, wrap_key)
        return OpenedItem(ImportItem(item.scope, item.key, value, item.meta), item.version)

    def parse(self, doc: object, passphrase: SecretValue | None) -> ParsedBundle:
        """Check the document's shape and read its items, using no key: cheap, and all an import needs to
        authorize before it pays for a KDF or an unwrap. The caller must treat the result as untrusted."""
        protection = fmt.protection_of(doc)
        assert isinstance(doc, dict)
        if protection["type"] == "master-key":
            fmt.unb64(protection.get("wrappedKey"), "bundle.protection.wrappedKey")
            if not isinstance(protection.get("masterKeyId"), str):
                raise ValidationError("bundle.protection.masterKeyId", "must be text")
        else:
            if passphrase is None:
                raise ValidationError("passphrase", "this bundle is protected by a passphrase")
            fmt.scrypt_params(protection)
        items = [fmt.item_from_json(raw, f"bundle.items[{i}]") for i, raw in enumerate(doc["items"])]
        history = fmt.history_of(doc, items)
        return ParsedBundle(doc, protection, items, history)

    def open(self, bundle: ParsedBundle, passphrase: SecretValue | None) -> list[OpenedItem]:
        """Derive or unwrap the bundle key, check the document MAC (which covers every item `parse` read), then
        decrypt the items."""
        protection, doc = bundle.protection, bundle.doc
        wrap_key = None
        if protection["type"] == "master-key":
            mac_key = self._unwrap_bundle_key(protection)
        else:
            assert passphrase is not None  # parse refused a passphrase bundle without one
            salt, n, r, p = fmt.scrypt_params(protection)
            mac_key, wrap_key = fmt.scrypt_keys(passphrase.encode(), salt, n, r, p)
        fmt.check_document_mac(mac_key, doc)
        if doc.get("count") != len(doc["items"]):
            raise IntegrityError()
        # A master-key bundle's DEKs are unwrapped by the master key (KMS calls): in bulk, in order.
        deks: list[bytes | None] = [None] * len(bundle.items) if wrap_key is not None else [
            *self._deks(bundle.items)]
        return [self._open_item(item, wrap_key, dek) for item, dek in zip(bundle.items, deks, strict=True)]

    def _unwrap_bundle_key(self, protection: dict[str, Any]) -> bytes:
        blob = fmt.unb64(protection.get("wrappedKey"), "bundle.protection.wrappedKey")
        try:
            return self._d.sealer.envelope.unwrap_key(blob, protection["masterKeyId"], fmt.BUNDLE_KEY_AAD)
        except (KeyProviderUnavailable, KeyAccessDenied, KeyDisabled):
            raise
        except KeyProviderError:
            # A key id no provider holds is the client's own text, and the provider's message quotes it: answer
            # with a fixed rule instead (it once came back as a 500 whose scrubbed detail was a value oracle).
            raise ValidationError("bundle.protection.masterKeyId",
                                  "names no master key configured here; this bundle cannot be opened") from None
