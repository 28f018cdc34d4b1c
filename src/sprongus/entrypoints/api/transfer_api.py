"""`/v1/secrets:import` and `/v1/secrets:export` on the secrets blueprint."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from sprongus.domain.errors import IntegrityError, ValidationError
from sprongus.domain.import_item import parse_items
from sprongus.domain.results import ImportReport
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.context import principal
from sprongus.entrypoints.api.docs import document_errors
from sprongus.entrypoints.api.idempotency import Idempotency
from sprongus.service.transfer import TransferOps


def add_transfer_routes(blp: Blueprint, transfer: TransferOps, idempotency: Idempotency) -> None:
    @blp.route("/secrets:import", methods=["POST"])
    @blp.arguments(s.ImportBody)
    @idempotency.guard
    @blp.response(200, s.ImportResult)
    @document_errors(blp, 401, 403, 404, 409, 422, 429)
    def import_secrets(body: dict[str, Any]) -> ImportReport:
        """Atomic import of plaintext items (allowPlaintext) or of a bundle. Supports Idempotency-Key."""
        items = parse_items(body["items"]) if body["items"] is not None else None
        passphrase = SecretValue(body["passphrase"]) if body.get("passphrase") else None
        try:
            return transfer.import_(principal(), items=items, bundle=body["bundle"], mode=body["mode"],
                                    allow_plaintext=body["allowPlaintext"], passphrase=passphrase,
                                    prefix=body["prefix"], dry_run=body["dryRun"])
        except IntegrityError:  # the client's bundle failed its check: bad input, not a server fault
            raise ValidationError("bundle", "integrity check failed: tampered, truncated or wrong "
                                  "key/passphrase") from None

    @blp.route("/secrets:export", methods=["GET"])
    @blp.arguments(s.ExportQuery, location="query", as_kwargs=True)
    @blp.response(200, s.ExportResult, description="Metadata (never values), or a bundle")
    @document_errors(blp, 401, 403, 404, 422, 429)
    def export_secrets(ownerType: str, ownerId: str | None, prefix: str, bundle: bool) -> dict[str, Any]:
        """Export metadata, or an encrypted bundle (needs secrets:reveal)."""
        scope = Scope.of(ownerType, ownerId)
        result = transfer.export(principal(), scope, prefix, bundle)
        if result.bundle is not None:
            return result.bundle
        return {"format": "sprongus.metadata.v1", "scope": str(scope), "prefix": prefix,
                "items": s.metadata_schema().dump(result.items)}
