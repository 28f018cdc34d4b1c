"""`/v1/secrets:import` and `/v1/secrets:export` on the secrets blueprint."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from sprongus.domain.errors import IntegrityError, ValidationError
from sprongus.domain.import_item import parse_items
from sprongus.domain.reports import ImportReport
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.context import principal
from sprongus.entrypoints.api.docs import document_errors
from sprongus.entrypoints.api.idempotency import Idempotency
from sprongus.ports.tokens import StoredResponse
from sprongus.service.transfer import TransferOps


def add_transfer_routes(blp: Blueprint, transfer: TransferOps, idempotency: Idempotency) -> None:
    def _arguments(body: dict[str, Any]) -> dict[str, Any]:  # ImportBody refused more than 5,000 items
        return {"items": parse_items(body["items"]) if body["items"] is not None else None,
                "bundle": body["bundle"], "mode": body["mode"], "allow_plaintext": body["allowPlaintext"],
                "passphrase": SecretValue(body["passphrase"]) if body.get("passphrase") else None,
                "prefix": body["prefix"], "dry_run": body["dryRun"]}

    def _checks(body: dict[str, Any]) -> None:
        transfer.admit(principal(), **_arguments(body), count=False)

    def _replay_checks(stored: StoredResponse | None, body: dict[str, Any]) -> None:
        transfer.admit(principal(), **_arguments(body))
        answer = json.loads(stored.body) if stored is not None and stored.status == 200 else {}  # as we stored it
        if answer and not answer.get("dryRun"):  # a dry run wrote nothing to be there still
            changes = answer.get("changes") or {}
            transfer.check_stored(principal(), [(place["scope"], place["keyName"]) for kind in ("added", "updated")
                                                for place in changes.get(kind, [])])

    @blp.route("/secrets:import", methods=["POST"])
    @blp.arguments(s.ImportBody())
    @idempotency.guard(_replay_checks, _checks)
    @blp.response(200, s.ImportResult)
    @document_errors(blp, 401, 403, 404, 409, 422, 429)
    def import_secrets(body: dict[str, Any]) -> ImportReport:
        """Atomic import of plaintext items (allowPlaintext) or of a bundle. Supports Idempotency-Key."""
        try:
            return transfer.import_(principal(), **_arguments(body))
        except IntegrityError:  # the client's bundle failed its check: bad input, not a server fault
            raise ValidationError("bundle", "integrity check failed: tampered, truncated or wrong "
                                  "key/passphrase") from None

    @blp.route("/secrets:export", methods=["GET"])
    @blp.arguments(s.ExportQuery(), location="query", as_kwargs=True)
    @blp.response(200, s.ExportResult, description="Metadata (never values), or a bundle")
    @document_errors(blp, 401, 403, 404, 422, 429)
    def export_secrets(ownerType: str, ownerId: str | None, prefix: str, bundle: bool,
                       allVersions: bool) -> Any:
        """Export metadata, or an encrypted bundle (needs secrets:reveal), with allVersions every kept version."""
        scope = Scope.of(ownerType, ownerId)
        result = transfer.export(principal(), scope, prefix, bundle, all_versions=allVersions)
        if result.bundle is not None:
            # Sent as built, not through the schema: its MAC covers every field, present and future, and the
            # CLI's local and remote exports must be the same document.
            return current_app.json.response(result.bundle)
        return {"format": "sprongus.metadata.v1", "scope": str(scope), "prefix": prefix,
                "items": s.metadata_schema().dump(result.items)}

