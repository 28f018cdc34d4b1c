"""OpenAPI documentation helpers shared by the blueprints: path parameters and the documented error answers."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from sprongus.adapters.problem_types import PROBLEM_JSON
from sprongus.entrypoints.api import schemas as s

KEY_PATH = "/secrets/<owner_type>/<owner_id>/<key_name>"
ERRORS = {401: "Missing, invalid or expired token", 403: "Missing scope", 404: "Absent, or not yours",
          409: "The same Idempotency-Key is still in progress", 410: "Used, expired or unknown token",
          412: "If-Match names another version", 422: "Invalid input", 429: "Rate limited",
          503: "Audit or key provider unavailable: nothing was revealed"}


def key_parameters() -> list[dict[str, Any]]:
    """Document the path's rules (docs/design.md#names-and-limits) so clients and fuzzers know them; the service
    enforces them."""
    return [{"in": "path", "name": "owner_type", "schema": {"type": "string", "enum": s.OWNER_TYPES}},
            {"in": "path", "name": "owner_id", "description": "`-` for the system scope",
             "schema": {"type": "string", "pattern": s.OWNER_ID_PATTERN}},
            {"in": "path", "name": "key_name",
             "schema": {"type": "string", "maxLength": 128, "pattern": s.KEY_NAME_PATTERN}}]


def document_errors(blp: Blueprint, *statuses: int) -> Any:
    """The error answers in the OpenAPI document. Only the documentation is kept: each `alt_response` also wraps
    the view in a call-through layer (with an async check), and seven of them cost every request ~25 µs."""
    def decorate(view: Any) -> Any:
        documented = view
        for status in statuses:
            documented = blp.alt_response(status, schema=s.Problem, content_type=PROBLEM_JSON,
                                          description=ERRORS.get(status, ""))(documented)
        view._apidoc = documented._apidoc
        return view
    return decorate
