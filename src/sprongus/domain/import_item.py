"""One secret to import: a value object shared by plaintext imports and opened bundles; and each new version an
import seals (its secrets' versions are sealed in bulk)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sprongus.domain.errors import ValidationError
from sprongus.domain.meta import MetaValue, validate_meta
from sprongus.domain.names import validate_key_name
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue

if TYPE_CHECKING:
    from sprongus.domain.records import SecretRecord


@dataclass(frozen=True, slots=True)
class ImportItem:
    scope: Scope
    key: str
    value: SecretValue
    meta: dict[str, MetaValue] | None = None


@dataclass(frozen=True)
class SealJob:
    """One new version for Sealer.seal_many (service/sealing.py): the arguments of `seal`."""

    previous: SecretRecord | None
    scope: Scope
    key: str
    value: SecretValue
    meta: dict[str, MetaValue] | None
    after_version: int = 0
    by: str | None = None


def parse_items(raw: object, default_scope: Scope | None = None) -> list[ImportItem]:
    """Validate plaintext items (`[{"scope", "key", "value", "meta"}]`); errors name the item's index."""
    if not isinstance(raw, list):
        raise ValidationError("items", "must be a list")
    items = []
    for i, entry in enumerate(raw):
        where = f"items[{i}]"
        if not isinstance(entry, dict):
            raise ValidationError(where, "must be an object with scope, key and value")
        scope_text = entry.get("scope")
        if scope_text is None and default_scope is not None:
            scope = default_scope
        elif isinstance(scope_text, str):
            try:
                scope = Scope.parse(scope_text)
            except ValidationError as exc:
                raise ValidationError(f"{where}.scope", exc.rule) from None
        else:
            raise ValidationError(f"{where}.scope", "must be user:<id>, project:<id> or system")
        value = entry.get("value")
        if not isinstance(value, str):
            raise ValidationError(f"{where}.value", "must be a string")
        try:
            secret = SecretValue(value)
        except ValidationError as exc:
            raise ValidationError(f"{where}.value", exc.rule) from None
        items.append(ImportItem(scope, validate_key_name(entry.get("key"), f"{where}.key"), secret,
                                None if entry.get("meta") is None else validate_meta(entry["meta"], f"{where}.meta")))
    return items
