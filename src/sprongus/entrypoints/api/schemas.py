"""Marshmallow schemas of the REST API: requests validated at the edge, responses documented in OpenAPI."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

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


class SecretRecord(Schema):
    ownerType = fields.String(validate=validate.OneOf(OWNER_TYPES))
    ownerId = fields.String(allow_none=True)
    scope = fields.String()
    keyName = fields.String()
    value = fields.String(metadata={"description": '"********" unless this is a reveal'})
    masked = fields.Boolean()
    version = fields.Integer()
    createdAt = fields.String()
    updatedAt = fields.String()
    lastRotatedAt = fields.String(allow_none=True)
    meta = fields.Dict()


class SecretPage(Schema):
    items = fields.List(fields.Nested(SecretRecord))
    nextCursor = fields.String(allow_none=True)


class ListQuery(Schema):
    ownerType = fields.String(required=True, validate=validate.OneOf(OWNER_TYPES))
    ownerId = fields.String(load_default=None, metadata={"pattern": OWNER_ID_QUERY_PATTERN})
    prefix = fields.String(load_default="", metadata={"pattern": PREFIX_PATTERN})
    withMeta = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(load_default=None)


class ExportQuery(Schema):
    ownerType = fields.String(required=True, validate=validate.OneOf(OWNER_TYPES))
    ownerId = fields.String(load_default=None, metadata={"pattern": OWNER_ID_QUERY_PATTERN})
    prefix = fields.String(load_default="", metadata={"pattern": PREFIX_PATTERN})
    bundle = fields.Boolean(load_default=False)


class PutBody(Schema):
    value = fields.String(required=True, metadata={"description": "UTF-8, at most 65,536 bytes"})
    meta = fields.Dict(load_default=None)


class RevealBody(Schema):
    oneTime = fields.Boolean(load_default=False)
    ttlSeconds = fields.Integer(strict=True, load_default=300, validate=validate.Range(min=1, max=3600))


class RevealTokenCreated(Schema):
    token = fields.String()
    expiresAt = fields.String()


class RedeemBody(Schema):
    token = fields.String(required=True)


class ImportItemBody(Schema):
    scope = fields.String(required=True)
    key = fields.String(required=True)
    value = fields.String(required=True)
    meta = fields.Dict(load_default=None)


class ImportBody(Schema):
    mode = fields.String(load_default="merge", validate=validate.OneOf(["merge", "replace"]))
    allowPlaintext = fields.Boolean(load_default=False)
    prefix = fields.String(load_default="")
    items = fields.List(fields.Dict(), load_default=None)
    bundle = fields.Dict(load_default=None)
    passphrase = fields.String(load_default=None, load_only=True)
    dryRun = fields.Boolean(load_default=False)


class ImportResult(Schema):
    added = fields.Integer()
    updated = fields.Integer()
    removed = fields.Integer()
    dryRun = fields.Boolean()
    changes = fields.Dict()


class ExportResult(Schema):
    """`sprongus.metadata.v1` (scope, prefix, items) or, with bundle=true, `sprongus.bundle.v1` (SPEC section 5)."""

    format = fields.String()
    scope = fields.String()
    prefix = fields.String()
    items = fields.List(fields.Dict())
    createdAt = fields.String(metadata={"description": "bundle only"})
    count = fields.Integer(metadata={"description": "bundle only"})
    protection = fields.Dict(metadata={"description": "bundle only: how the bundle's data keys are wrapped"})
    mac = fields.String(metadata={"description": "bundle only: authenticates the whole document"})
