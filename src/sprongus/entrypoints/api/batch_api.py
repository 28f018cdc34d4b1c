"""`POST /v1/secrets:reveal`: many plaintexts of one scope in one request, on the secrets blueprint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, fields, pre_load, validate
from marshmallow import ValidationError as SchemaError

from sprongus.domain.scope import Scope
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.context import principal
from sprongus.entrypoints.api.docs import document_errors
from sprongus.service.batch_reveal import KEYS_RULE, MAX_BATCH, BatchRevealOps

RecentAuthCheck = Callable[[Scope, "str | None"], None]


class BatchRevealBody(Schema):
    ownerType = fields.String(required=True, validate=validate.OneOf(s.OWNER_TYPES))
    ownerId = fields.String(load_default=None, metadata={"pattern": s.OWNER_ID_QUERY_PATTERN})
    prefix = fields.String(load_default=None, metadata={
        "pattern": s.PREFIX_PATTERN, "description": "reveal the secrets under it (at most 1,000); not with keys"})
    keys = fields.List(fields.String(metadata={"pattern": s.KEY_NAME_PATTERN}), load_default=None,
                       validate=validate.Length(max=MAX_BATCH),
                       metadata={"description": "reveal these (at most 1,000); neither keys nor prefix: the scope"})

    @pre_load
    def _bounded(self, data: Any, **kwargs: Any) -> Any:
        """An oversized list is refused before its items are read one by one (a 32 MB body holds millions)."""
        if isinstance(data, dict) and isinstance(data.get("keys"), list) and len(data["keys"]) > MAX_BATCH:
            raise SchemaError({"keys": [KEYS_RULE]})
        return data


class RevealedItem(Schema):
    keyName = fields.String(attribute="key")
    value = s.Plaintext()
    version = fields.Integer()


class BatchRevealResult(Schema):
    items = fields.List(fields.Nested(RevealedItem), metadata={"description": "by key name"})
    missing = fields.List(fields.String(), metadata={
        "description": "requested keys that revealed nothing: absent, or not the token's to see"})


def add_batch_routes(blp: Blueprint, ops: BatchRevealOps, recent_auth_check: RecentAuthCheck) -> None:
    @blp.route("/secrets:reveal", methods=["POST"])
    @blp.arguments(BatchRevealBody())
    @blp.response(200, BatchRevealResult, description="The plaintexts, once; one audit row per secret")
    @document_errors(blp, 401, 403, 404, 422, 429, 503)
    def reveal_many(body: dict[str, Any]) -> Response:
        """Reveal up to 1,000 secrets of one scope, by name or prefix (recent authentication required)."""
        scope = Scope.of(body["ownerType"], body["ownerId"])
        ops.check(principal(), scope, body["prefix"], body["keys"])  # a caller who may not is refused first
        recent_auth_check(scope, None)
        result = ops.reveal_many(principal(), scope, body["prefix"], body["keys"])
        # The document BatchRevealResult describes, built directly: a service reads its configuration at start-up
        # with this request, and marshmallow's per-field work was a tenth of its time for 200 items.
        document = {"items": [{"keyName": i.key, "value": i.value.reveal(), "version": i.version}
                              for i in result.items], "missing": result.missing}
        return jsonify(document)
