"""The encrypted bundle format `sprongus.bundle.v1` (docs/design.md#bundles).

The whole document is authenticated with HMAC-SHA256 over its canonical JSON, so an item dropped, reordered or
edited is detected. The MAC key is either a random bundle key wrapped by the master key, or derived with scrypt
from a passphrase; in passphrase mode each item's DEK is re-wrapped under the passphrase too, so the bundle moves
to an installation with another master key. A bundle made with `--all-versions` says `"history": true` and holds
each secret's kept versions too, oldest first and its current one last: items carry their version numbers
already, so the format stays v1 (a release before versions refuses such a bundle: it repeats a scope and key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from sprongus.domain.envelope import Sealed
from sprongus.domain.errors import IntegrityError, ValidationError
from sprongus.domain.meta import MetaValue, validate_meta
from sprongus.domain.names import validate_key_name
from sprongus.domain.scope import Scope

BUNDLE_FORMAT = "sprongus.bundle.v1"
BUNDLE_KEY_AAD = b"sprongus.bundle.v1:bundle-key"
PASSPHRASE_KEY_ID = "passphrase"  # noqa: S105 - a marker, not a password
SCRYPT_N = 2**15
SCRYPT_MIN_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
# The most an imported bundle may ask for: the cost is the client's choice and the server pays it (CPU and
# 128*r*n bytes, about 128 MiB here), so it is capped at 4x what sprongus writes, with no parallelism.
SCRYPT_MAX_N = 2**17
SCRYPT_MAX_R = 8
SCRYPT_MAX_P = 1
SCRYPT_MAXMEM = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BundleItem:
    scope: Scope
    key: str
    version: int
    meta: dict[str, MetaValue]
    sealed: Sealed


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, field: str) -> bytes:
    if not isinstance(text, str):
        raise ValidationError(field, "must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "must be base64 text") from None


def scrypt_keys(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """(mac key, wrap key) derived from a passphrase."""
    derived = hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=64, maxmem=SCRYPT_MAXMEM)
    return derived[:32], derived[32:]


def item_to_json(item: BundleItem) -> dict[str, Any]:
    s = item.sealed
    return {"scope": str(item.scope), "key": item.key, "version": item.version, "meta": item.meta,
            "alg": s.alg, "nonce": b64(s.nonce), "ciphertext": b64(s.ciphertext), "dekWrapped": b64(s.dek_wrapped),
            "masterKeyId": s.master_key_id, "hmac": s.hmac}


def item_from_json(raw: object, where: str) -> BundleItem:
    if not isinstance(raw, dict):
        raise ValidationError(where, "must be an object")
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(f"{where}.version", "must be a positive integer")
    hmac_tag = raw.get("hmac")
    if hmac_tag is not None and not isinstance(hmac_tag, str):
        raise ValidationError(f"{where}.hmac", "must be text or null")
    alg, key_id = raw.get("alg"), raw.get("masterKeyId")
    if not isinstance(alg, str) or not isinstance(key_id, str):
        raise ValidationError(where, "alg and masterKeyId must be text")
    sealed = Sealed(unb64(raw.get("ciphertext"), f"{where}.ciphertext"), unb64(raw.get("dekWrapped"),
                    f"{where}.dekWrapped"), unb64(raw.get("nonce"), f"{where}.nonce"), alg, key_id, hmac_tag)
    scope_text = raw.get("scope")
    if not isinstance(scope_text, str):
        raise ValidationError(f"{where}.scope", "must be user:<id>, project:<id> or system")
    return BundleItem(Scope.parse(scope_text), validate_key_name(raw.get("key"), f"{where}.key"), version,
                      validate_meta(raw.get("meta"), f"{where}.meta"), sealed)


def history_of(doc: dict[str, Any], items: list[BundleItem]) -> bool:
    """Whether the bundle carries history (`"history": true`, written by `--all-versions`). Then a secret may have
    several items, which must come oldest first (versions strictly increasing); without it, one item each (the
    importer refuses a repeat). The flag is under the document MAC like everything else."""
    history = doc.get("history", False)
    if not isinstance(history, bool):
        raise ValidationError("bundle.history", "must be true or false")
    if history:
        newest: dict[tuple[Scope, str], int] = {}
        for i, item in enumerate(items):
            place = (item.scope, item.key)
            if newest.get(place, 0) >= item.version:
                raise ValidationError(f"bundle.items[{i}].version",
                                      "must be above the earlier items' of the same scope and key")
            newest[place] = item.version
    return history


def canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def document_mac(mac_key: bytes, doc: dict[str, Any]) -> str:
    return b64(hmac.new(mac_key, BUNDLE_FORMAT.encode() + b"\0" + canonical(doc), hashlib.sha256).digest())


def check_document_mac(mac_key: bytes, doc: dict[str, Any]) -> None:
    given = doc.get("mac")
    if not isinstance(given, str) or not hmac.compare_digest(given, document_mac(mac_key, doc)):
        raise IntegrityError("bundle integrity check failed: tampered, truncated or wrong key/passphrase")


def protection_of(doc: object) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise ValidationError("bundle", f"must be a JSON document with format {BUNDLE_FORMAT}")
    protection = doc.get("protection")
    if not isinstance(protection, dict) or protection.get("type") not in ("master-key", "passphrase"):
        raise ValidationError("bundle.protection", "type must be master-key or passphrase")
    if not isinstance(doc.get("items"), list):
        raise ValidationError("bundle.items", "must be a list")
    return protection


def scrypt_params(protection: dict[str, Any]) -> tuple[bytes, int, int, int]:
    """The passphrase KDF's cost, checked before scrypt runs (n must be a power of two, or OpenSSL raises)."""
    n = _cost(protection.get("n"), "n", SCRYPT_MIN_N, SCRYPT_MAX_N,
              f"must be a power of two from {SCRYPT_MIN_N} (2^14) to {SCRYPT_MAX_N} (2^17)")
    if n & (n - 1):
        raise ValidationError("bundle.protection.n",
                              f"must be a power of two from {SCRYPT_MIN_N} (2^14) to {SCRYPT_MAX_N} (2^17)")
    r = _cost(protection.get("r"), "r", 1, SCRYPT_MAX_R, f"must be an integer from 1 to {SCRYPT_MAX_R}")
    p = _cost(protection.get("p"), "p", 1, SCRYPT_MAX_P, f"must be {SCRYPT_MAX_P}")
    return unb64(protection.get("salt"), "bundle.protection.salt"), n, r, p


def _cost(value: object, name: str, low: int, high: int, rule: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"bundle.protection.{name}", rule)
    return value
