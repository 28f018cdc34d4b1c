"""A secret's history over HTTP: its kept versions, rollback to one of them, and restore after a soft delete
(docs/history.md). Reading or revealing one version is the `?version=` of the record's own GET and `version` in
the reveal body (secrets_api.py); purge is `DELETE ...?purge=true`."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from sprongus.domain.history import History
from sprongus.domain.scope import Scope
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.context import principal
from sprongus.entrypoints.api.docs import KEY_PATH, document_errors, key_parameters
from sprongus.service.history import HistoryOps

Reply = tuple[Any, int, dict[str, str]]


def add_history_routes(blp: Blueprint, history: HistoryOps) -> None:
    @blp.route(KEY_PATH + "/versions", parameters=key_parameters(), methods=["GET"])
    @blp.response(200, s.History, description="The kept versions, newest first; deletedAt while soft-deleted")
    @document_errors(blp, 401, 403, 404, 422)
    def list_versions(owner_type: str, owner_id: str, key_name: str) -> History:
        """A secret's kept versions: numbers, times and authors, never a value (a deleted secret's too)."""
        return history.history(principal(), Scope.of(owner_type, owner_id), key_name)

    @blp.route(KEY_PATH + ":rollback", parameters=key_parameters(), methods=["POST"])
    @blp.arguments(s.RollbackBody())
    @blp.response(200, s.SecretRecord, description="The new version, masked: latest+1 holding the old value")
    @document_errors(blp, 401, 403, 404, 422, 429)
    def rollback(body: dict[str, Any], owner_type: str, owner_id: str, key_name: str) -> Reply:
        """Write a new version holding a kept version's value (sealed afresh)."""
        result = history.rollback(principal(), Scope.of(owner_type, owner_id), key_name, body["version"])
        return result.view, 200, {"ETag": f'"{result.view.version}"'}

    @blp.route(KEY_PATH + ":restore", parameters=key_parameters(), methods=["POST"])
    @blp.response(200, s.SecretRecord, description="The restored secret, masked, with the versions it had")
    @document_errors(blp, 401, 403, 404, 422, 429)
    def restore(owner_type: str, owner_id: str, key_name: str) -> Reply:
        """Undo a soft delete (404 unless the secret is deleted and not yet purged)."""
        view = history.restore(principal(), Scope.of(owner_type, owner_id), key_name)
        return view, 200, {"ETag": f'"{view.version}"'}
