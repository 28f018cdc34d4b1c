"""`GET /v1/audit`: a page of the audit trail for a token with `secrets:admin`, newest first.

The caller sees events whose scope is `system` or one of its token's projects, and nothing else (not `user:*` rows,
not vault-wide rows without a scope, not another project's). The query is read by hand rather than by a schema, so
an unknown or repeated parameter is refused too; a bad filter answers 422 naming the field (never repeating the
input), like every other field rule of the API.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from sprongus.adapters.problem_types import PROBLEM_JSON
from sprongus.domain.errors import Unauthenticated, ValidationError
from sprongus.domain.records import AuditAction
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.context import authenticate, principal, record_refused
from sprongus.entrypoints.api.docs import document_errors
from sprongus.entrypoints.api.problems import problem
from sprongus.service.audit_query import MAX_LIMIT, AuditQuery
from sprongus.service.audit_reading import AuditReader
from sprongus.service.auditing import Auditor
from sprongus.service.tokens import TokenService

FILTERS = ("scope", "key", "actor", "action", "since", "until")
PARAMETERS = (*FILTERS, "limit", "cursor")
_DESCRIPTIONS = {
    "scope": "`system` or `project:<id>` of the token's projects (others match nothing)",
    "key": "events naming this key", "actor": "events by this actor (exact)",
    "action": "an audit action: create, update, reveal, delete, authenticate, ...",
    "since": "RFC 3339 (inclusive), or an age: 30m, 12h, 7d", "until": "RFC 3339 (exclusive), or an age",
    "limit": f"1-{MAX_LIMIT}, default 50", "cursor": "`nextCursor` of the previous page (opaque)",
}


class AuditEventSchema(Schema):
    seq = fields.Integer(required=True)
    time = fields.String(required=True, metadata={"description": "RFC 3339 UTC with microseconds"})
    actor = fields.String(required=True)
    action = fields.String(required=True)
    scope = fields.String(allow_none=True)
    keyName = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True)
    outcome = fields.String(required=True)
    requestId = fields.String(allow_none=True)
    clientAddress = fields.String(allow_none=True)
    detail = fields.Dict(metadata={"description": "counts, mode, reason: never a value"})
    prevHash = fields.String(required=True, allow_none=True,
                             metadata={"description": "null: the chain is the vault owner's to check (audit verify)"})
    hash = fields.String(required=True, allow_none=True, metadata={"description": "null, as prevHash"})


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema), required=True)
    nextCursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


def audit_blueprint(reader: AuditReader, tokens: TokenService, auditor: Auditor) -> Blueprint:
    blp = Blueprint("audit", __name__, url_prefix="/v1", description="The audit trail (secrets:admin)")

    @blp.before_request
    def _authenticate() -> None:
        try:
            authenticate(tokens)
        except Unauthenticated as refusal:
            record_refused(auditor, refusal)
            raise

    @blp.after_request
    def _no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    @blp.route("/audit", methods=["GET"])
    @blp.doc(parameters=[{"in": "query", "name": name, "required": False, "schema": {"type": "string"},
                          "description": _DESCRIPTIONS[name]} for name in PARAMETERS])
    @blp.response(200, AuditPageSchema, description="Newest first; follow nextCursor for older events")
    @blp.alt_response(422, schema=s.Problem, content_type=PROBLEM_JSON,
                      description="A malformed filter, limit or cursor (the field is named)")
    @document_errors(blp, 401, 403, 503)
    def list_audit() -> Any:
        """Audit events of the system scope and the token's projects (never a value)."""
        reader.admit(principal())  # 403 (audited) before anything of the query is read
        try:
            with auditor.failures(principal(), AuditAction.LIST, None, what="audit"):  # a 422 is audited too
                given = _single_values()
            page = reader.list(principal(), AuditQuery(**{k: given.get(k) for k in FILTERS}), given.get("cursor"),
                               given.get("limit"))
        except ValidationError as exc:
            return problem(422, "validation", "Invalid request", f"{exc.field}: {exc.rule}", exc.errors)
        chain = principal().owner  # a token's view skips rows it may not see: no hashes (see to_dict)
        return {"items": [event.to_dict(chain) for event in page.items], "nextCursor": page.next_cursor}

    return blp


def _single_values() -> dict[str, str]:
    """Each known parameter at most once; an unknown one is refused without repeating its name."""
    values: dict[str, str] = {}
    for name in request.args:
        if name not in PARAMETERS:
            raise ValidationError("query", "unknown parameter")
        given = request.args.getlist(name)
        if len(given) > 1:
            raise ValidationError(name, "give it at most once")
        values[name] = given[0]
    return values
