"""Marshmallow schemas of the REST API: requests are validated and responses serialized by these, so the OpenAPI
document and the bodies cannot drift apart."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, fields, post_dump, pre_dump, pre_load, validate
from marshmallow import ValidationError as SchemaError

from sprongus.domain.names import MAX_VERSION_NUMBER
from sprongus.domain.records import SecretView
from sprongus.domain.times import utc_iso, utc_iso_or_none
from sprongus.domain.values import MASK

OWNER_TYPES = ["user", "project", "system"]
OWNER_ID_PATTERN = r"^(-|[A-Za-z0-9][A-Za-z0-9._@-]{0,127})$"  # `-`: the system scope, in URLs
OWNER_ID_QUERY_PATTERN = r"^(-?|[A-Za-z0-9][A-Za-z0-9._@-]{0,127})$"  # omitted, empty or `-` for system
KEY_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$"
PREFIX_PATTERN = r"^([A-Za-z][A-Za-z0-9._-]{0,127})?$"


class Problem(Schema):
    """RFC 9457 problem details. Never echoes a submitted value."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class Instant(fields.String):
    """A datetime as ISO 8601 UTC with microseconds and `Z`."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else utc_iso(value)


class Plaintext(fields.String):
    """A SecretValue: the mask, unless this answer is the reveal."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str:
        return MASK if value is None else str(value.reveal())


class Flag(fields.Boolean):
    """A query switch: exactly `true` or `false` (not marshmallow's `1`, `yes`, `on`...), so a typo is a 422, not a
    silent default."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(truthy={"true"}, falsy={"false"}, load_default=False, **kwargs)


class VersionParam(fields.Integer):
    """A version number in a query string: plain digits only. `int()` would also take ` 5`, `+5`, `0_5` and other
    scripts' digits, each a second spelling of one request."""

    _DIGITS = re.compile(r"[1-9][0-9]{0,9}")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not self._DIGITS.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def version_range() -> validate.Range:
    return validate.Range(min=1, max=MAX_VERSION_NUMBER)


class Count(fields.Integer):
    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int:
        return len(value)


class SecretRecord(Schema):
    ownerType = fields.String(attribute="scope.owner_type.value", validate=validate.OneOf(OWNER_TYPES))
    ownerId = fields.String(attribute="scope.owner_id", allow_none=True)
    scope = fields.String()
    keyName = fields.String(attribute="key")
    value = Plaintext(metadata={"description": '"********" unless this is a reveal'})
    masked = fields.Boolean()
    version = fields.Integer()
    createdAt = Instant(attribute="created_at")
    updatedAt = Instant(attribute="updated_at")
    lastRotatedAt = Instant(attribute="last_rotated_at", allow_none=True)
    meta = fields.Dict()
    deletedAt = Instant(attribute="deleted_at", allow_none=True,
                        metadata={"description": "only on a soft-deleted secret (a listing with deleted=true)"})

    @post_dump
    def _deleted_at_only_when_deleted(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data.get("deletedAt", "") is None:
            del data["deletedAt"]
        return data


def record_body(view: SecretView) -> dict[str, Any]:
    """`SecretRecord().dump(view)` written out, for the hot answers (entrypoints/api/lean.py): marshmallow's field by
    field dump was ~15% of a masked read. tests/unit/test_lean_api.py keeps the two equal, byte for byte."""
    scope = view.scope
    body: dict[str, Any] = {
        "ownerType": scope.owner_type.value, "ownerId": scope.owner_id, "scope": str(scope), "keyName": view.key,
        "value": MASK if view.value is None else str(view.value.reveal()), "masked": view.value is None,
        "version": int(view.version), "createdAt": utc_iso_or_none(view.created_at),
        "updatedAt": utc_iso_or_none(view.updated_at), "lastRotatedAt": utc_iso_or_none(view.last_rotated_at),
        "meta": dict(view.meta)}
    if view.deleted_at is not None:
        body["deletedAt"] = utc_iso(view.deleted_at)
    return body


def metadata_schema() -> SecretRecord:
    """A secret without its value: what metadata exports carry."""
    return SecretRecord(many=True, exclude=("value", "masked"))


class SecretPage(Schema):
    items = fields.List(fields.Nested(SecretRecord))
    nextCursor = fields.String(attribute="next_cursor", allow_none=True)

    @post_dump(pass_original=True)
    def _meta_only_when_asked(self, data: dict[str, Any], original: Any, **kwargs: Any) -> dict[str, Any]:
        if not getattr(original, "with_meta", True):
            for item in data["items"]:
                item.pop("meta", None)
        return data


class ListQuery(Schema):
    ownerType = fields.String(required=True, validate=validate.OneOf(OWNER_TYPES))
    ownerId = fields.String(load_default=None, metadata={"pattern": OWNER_ID_QUERY_PATTERN})
    prefix = fields.String(load_default="", metadata={"pattern": PREFIX_PATTERN})
    withMeta = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(load_default=None)
    deleted = Flag(metadata={"description": "list soft-deleted secrets instead of live ones"})


class VersionQuery(Schema):
    version = VersionParam(load_default=None, allow_none=False, validate=version_range(),
                           metadata={"description": "a kept version instead of the current one"})


class DeleteQuery(Schema):
    purge = Flag(metadata={"description": "destroy the secret and every version now (needs secrets:admin too)"})


class ExportQuery(Schema):
    ownerType = fields.String(required=True, validate=validate.OneOf(OWNER_TYPES))
    ownerId = fields.String(load_default=None, metadata={"pattern": OWNER_ID_QUERY_PATTERN})
    prefix = fields.String(load_default="", metadata={"pattern": PREFIX_PATTERN})
    bundle = Flag(metadata={"description": "an encrypted bundle (needs secrets:reveal) instead of metadata"})
    allVersions = Flag(metadata={"description": "with bundle=true: every kept version of each secret, not only the "
                                                "current one"})


# Every query parameter of the secrets endpoints: a repeated one is named in its 422 only if it is one of these.
QUERY_NAMES = frozenset(name for query in (ListQuery, VersionQuery, DeleteQuery, ExportQuery)
                        for name in query().fields)


class PutBody(Schema):
    value = fields.String(required=True, metadata={"description": "UTF-8, at most 65,536 bytes"})
    meta = fields.Dict(load_default=None)


class RevealBody(Schema):
    oneTime = fields.Boolean(load_default=False)
    ttlSeconds = fields.Integer(strict=True, load_default=300, validate=validate.Range(min=1, max=3600))
    version = fields.Integer(strict=True, load_default=None, allow_none=False, validate=version_range(),
                             metadata={"description": "reveal a kept version instead of the current one"})


class RollbackBody(Schema):
    version = fields.Integer(strict=True, required=True, validate=version_range(),
                             metadata={"description": "the kept version whose value becomes the new version"})


class VersionInfo(Schema):
    version = fields.Integer()
    createdAt = Instant(attribute="created_at", allow_none=True)
    createdBy = fields.String(attribute="created_by", allow_none=True)
    current = fields.Boolean()


class History(Schema):
    """A secret's kept versions, newest first: numbers, times and authors, never a value."""

    items = fields.List(fields.Nested(VersionInfo))
    deletedAt = Instant(attribute="deleted_at", allow_none=True)


class Purged(Schema):
    destroyedVersions = fields.List(fields.Integer(), attribute="destroyed")


class RevealTokenCreated(Schema):
    token = fields.String()
    expiresAt = fields.String(attribute="expires_at")


class RedeemBody(Schema):
    token = fields.String(required=True)


# One API import: whatever the body size allows, a bigger one is refused before any item is parsed (each becomes
# a SecretValue, and a bundle's items a KMS call each). The local CLI has no such cap.
MAX_API_IMPORT_ITEMS = 5000
IMPORT_SIZE_RULE = f"at most {MAX_API_IMPORT_ITEMS} items per API import; split the import"


class ImportBody(Schema):
    mode = fields.String(load_default="merge", validate=validate.OneOf(["merge", "replace"]))
    allowPlaintext = fields.Boolean(load_default=False)
    prefix = fields.String(load_default="")
    items = fields.List(fields.Dict(), load_default=None)
    bundle = fields.Dict(load_default=None)
    passphrase = fields.String(load_default=None, load_only=True)
    dryRun = fields.Boolean(load_default=False)

    @pre_load
    def _bounded(self, data: Any, **kwargs: Any) -> Any:
        """Counted before the schema loads the items one by one: 32 MiB of `{},` is ten million of them."""
        if not isinstance(data, dict):
            return data
        if _longer_than(data.get("items"), MAX_API_IMPORT_ITEMS):
            raise SchemaError({"items": [IMPORT_SIZE_RULE]})
        bundle = data.get("bundle")
        if isinstance(bundle, dict) and _longer_than(bundle.get("items"), MAX_API_IMPORT_ITEMS):
            raise SchemaError({"bundle": {"items": [IMPORT_SIZE_RULE]}})
        return data


def _longer_than(items: Any, limit: int) -> bool:
    return isinstance(items, list) and len(items) > limit


class ImportResult(Schema):
    added = Count()
    updated = Count()
    removed = Count()
    dryRun = fields.Boolean(attribute="dry_run")
    changes = fields.Dict(metadata={"description": "added/updated/removed: [{scope, keyName}]"})

    @pre_dump
    def _with_changes(self, report: Any, **kwargs: Any) -> dict[str, Any]:
        """An ImportReport's pairs, as counts and as the named changes."""
        kinds = ("added", "updated", "removed")
        return {**{kind: getattr(report, kind) for kind in kinds}, "dry_run": report.dry_run,
                "changes": {kind: [{"scope": scope, "keyName": key} for scope, key in getattr(report, kind)]
                            for kind in kinds}}


class ExportResult(Schema):
    """`sprongus.metadata.v1` (scope, prefix, items) or, with bundle=true, `sprongus.bundle.v1`
    (docs/design.md#bundles)."""

    format = fields.String()
    scope = fields.String()
    prefix = fields.String()
    items = fields.List(fields.Dict())
    createdAt = fields.String(metadata={"description": "bundle only"})
    count = fields.Integer(metadata={"description": "bundle only"})
    protection = fields.Dict(metadata={"description": "bundle only: how the bundle's data keys are wrapped"})
    history = fields.Boolean(metadata={"description": "bundle only, with allVersions: true, and the items hold "
                                                      "every kept version"})
    mac = fields.String(metadata={"description": "bundle only: authenticates the whole document"})
