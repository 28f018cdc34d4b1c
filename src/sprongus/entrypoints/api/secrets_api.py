"""`/v1/secrets` endpoints: a thin adapter from HTTP to the use cases (docs/design.md#api).

Views return domain objects; the schemas of `@blp.response` serialize them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, g, jsonify, request
from flask_smorest import Blueprint

from sprongus.domain.errors import Conflict, PreconditionFailed, StepUpRequired, Unauthenticated, ValidationError
from sprongus.domain.records import AuditAction, Outcome, SecretView
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue, close_value_scope, open_value_scope
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.batch_api import add_batch_routes
from sprongus.entrypoints.api.context import authenticate, principal, record_refused, request_id, token
from sprongus.entrypoints.api.docs import KEY_PATH, document_errors, key_parameters
from sprongus.entrypoints.api.history_api import add_history_routes
from sprongus.entrypoints.api.idempotency import Idempotency
from sprongus.entrypoints.api.lean import lean_arguments, lean_response, no_json_body, no_query
from sprongus.entrypoints.api.transfer_api import add_transfer_routes
from sprongus.ports.tokens import RecentAuthVerifier, StoredResponse
from sprongus.service.auditing import Auditor
from sprongus.service.batch_reveal import BatchRevealOps
from sprongus.service.history import HistoryOps
from sprongus.service.reveal_tokens import RevealTokenOps
from sprongus.service.rotation import RotationOps
from sprongus.service.secrets import SecretOps
from sprongus.service.tokens import TokenService
from sprongus.service.transfer import TransferOps

Reply = tuple[Any, int, dict[str, str]]


@dataclass(frozen=True)
class Listing:
    """One page of a list, and whether its items carry meta (the schema drops it otherwise)."""

    items: list[SecretView]
    next_cursor: str | None
    with_meta: bool


@dataclass(frozen=True)
class UseCases:
    secrets: SecretOps
    transfer: TransferOps
    rotation: RotationOps
    reveal_tokens: RevealTokenOps
    auditor: Auditor
    batch_reveal: BatchRevealOps
    history: HistoryOps


def _with_etag(view: SecretView, status: int = 200) -> Reply:
    return view, status, {"ETag": f'"{view.version}"'}


def _expected_version() -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    text = header.strip()
    if text.startswith("W/"):
        raise PreconditionFailed("If-Match needs a strong ETag")
    try:
        return int(text.strip('"'))
    except ValueError:
        raise PreconditionFailed("If-Match must be an ETag from this API (a quoted version)") from None


def secrets_blueprint(cases: UseCases, tokens: TokenService, recent_auth: RecentAuthVerifier,
                      idempotency: Idempotency) -> Blueprint:
    blp = Blueprint("secrets", __name__, url_prefix="/v1", description="Secrets: masked reads, explicit reveals")
    secrets, auditor = cases.secrets, cases.auditor

    # Every request of the app (not only this blueprint's) gets its own value scope: the values it brings or
    # opens are the only ones its error answers are scrubbed against. gunicorn's threads serve request after
    # request, so the scope is closed at the end, never left for the next request on the thread.
    @blp.before_app_request
    def _open_value_scope() -> None:
        g.value_scope = open_value_scope()

    @blp.teardown_app_request
    def _close_value_scope(exc: BaseException | None) -> None:
        scope = g.pop("value_scope", None)
        if scope is not None:
            close_value_scope(scope)

    @blp.before_request
    def _authenticate() -> None:
        if request.endpoint == "secrets.redeem":
            return
        try:
            authenticate(tokens)
        except Unauthenticated as refusal:
            record_refused(auditor, refusal)
            raise

    def _check_recent_auth(scope: Scope, key: str | None) -> None:
        try:
            recent_auth.check(token())
        except StepUpRequired:
            auditor.record(principal(), AuditAction.REVEAL, scope, key, None, Outcome.DENIED, reason="step-up")
            raise

    @blp.route("/secrets", methods=["GET"])
    @blp.arguments(s.ListQuery(), location="query", as_kwargs=True)
    @blp.response(200, s.SecretPage)
    @document_errors(blp, 401, 403, 404, 422)
    def list_secrets(ownerType: str, ownerId: str | None, prefix: str, withMeta: bool, limit: int,
                     cursor: str | None, deleted: bool) -> Listing:
        """List a scope's secrets, masked, by key name (keyset pagination); deleted=true: the soft-deleted ones."""
        page = secrets.list(principal(), Scope.of(ownerType, ownerId), prefix, withMeta, cursor, limit, deleted)
        return Listing(page.items, page.next_cursor, withMeta)

    @blp.route(KEY_PATH, parameters=key_parameters(), methods=["GET"])
    @lean_arguments(blp, s.VersionQuery(), location="query", as_kwargs=True, nothing_given=no_query)
    @lean_response(blp, 200, s.SecretRecord, s.record_body,
                   description="The masked record; ETag is its version (not for ?version)")
    @document_errors(blp, 401, 403, 404, 422)
    def get_secret(owner_type: str, owner_id: str, key_name: str, version: int | None) -> Reply:
        """A secret's masked record with meta; ?version=N: a kept version's (a destroyed one is 404)."""
        view = secrets.get(principal(), Scope.of(owner_type, owner_id), key_name, version=version)
        # An ETag is what If-Match compares with the current version: an old version's record must not offer one.
        return _with_etag(view) if version is None else (view, 200, {})

    def _put_checks(body: dict[str, Any], owner_type: str, owner_id: str, key_name: str) -> None:
        secrets.check_set(principal(), Scope.of(owner_type, owner_id), key_name,
                          conditional="If-Match" in request.headers, meta=body["meta"])

    def _put_replay_checks(stored: StoredResponse | None, body: dict[str, Any], owner_type: str, owner_id: str,
                           key_name: str) -> None:
        secrets.check_replay(principal(), Scope.of(owner_type, owner_id), key_name,
                             conditional="If-Match" in request.headers, must_exist=stored is not None)

    @blp.route(KEY_PATH, parameters=key_parameters(), methods=["PUT"])
    @blp.arguments(s.PutBody())
    @idempotency.guard(_put_replay_checks, _put_checks)
    @lean_response(blp, 200, s.SecretRecord, s.record_body, description="Updated (201 when created); masked")
    @blp.alt_response(201, schema=s.SecretRecord, description="Created")
    @document_errors(blp, 401, 403, 404, 409, 412, 422, 429)
    def put_secret(body: dict[str, Any], owner_type: str, owner_id: str, key_name: str) -> Reply:
        """Create or update (version+1). Supports Idempotency-Key and If-Match (which needs secrets:read too)."""
        scope = Scope.of(owner_type, owner_id)
        try:
            expected = _expected_version()
        except PreconditionFailed:
            secrets.check_set(principal(), scope, key_name, conditional=True)  # 412 only for who may read
            raise
        try:
            result = secrets.set(principal(), scope, key_name, SecretValue(body["value"]), body["meta"], expected)
        except Conflict as exc:
            if expected is None:
                raise
            raise PreconditionFailed(f"If-Match: the current version is {exc.current_version}") from None
        return _with_etag(result.view, 201 if result.created else 200)

    @blp.route(KEY_PATH, parameters=key_parameters(), methods=["DELETE"])
    @blp.arguments(s.DeleteQuery(), location="query", as_kwargs=True)
    @blp.response(204, description="Deleted (soft: every version kept until purged or expired)")
    @blp.alt_response(200, schema=s.Purged, description="purge=true: destroyed, with the version numbers")
    @document_errors(blp, 401, 403, 404, 422, 429)
    def delete_secret(owner_type: str, owner_id: str, key_name: str, purge: bool) -> Any:
        """Delete a secret (soft); purge=true destroys it and every version now (needs secrets:admin too)."""
        scope = Scope.of(owner_type, owner_id)
        if purge:
            destroyed = cases.history.purge(principal(), scope, key_name)
            response: Response = jsonify(s.Purged().dump({"destroyed": destroyed}))
            return response  # the alternative response's schema: @blp.response would dump it as the 204's
        secrets.unset(principal(), scope, key_name)
        return Response(status=204)

    @blp.route(KEY_PATH + ":reveal", parameters=key_parameters(), methods=["POST"])
    @lean_arguments(blp, s.RevealBody(), required=False, nothing_given=no_json_body)
    @lean_response(blp, 200, s.SecretRecord, s.record_body, description="The plaintext, once, in `value`")
    @blp.alt_response(201, schema=s.RevealTokenCreated, description="A single-use reveal token (oneTime)")
    @document_errors(blp, 401, 403, 404, 422, 429, 503)
    def reveal_secret(body: dict[str, Any], owner_type: str, owner_id: str, key_name: str) -> Any:
        """Reveal the plaintext (recent authentication required), or mint a single-use reveal token."""
        scope = Scope.of(owner_type, owner_id)
        secrets.check_reveal(principal(), scope, key_name)  # a caller who may not is refused first
        _check_recent_auth(scope, key_name)
        version = body.get("version")
        if body.get("oneTime"):
            if version is not None:  # a reveal token opens the version current when it is redeemed
                raise ValidationError("version", "a one-time reveal token reveals the current version: not with "
                                      "oneTime")
            minted = cases.reveal_tokens.mint(principal(), scope, key_name, body.get("ttlSeconds", 300))
            response: Response = jsonify(s.RevealTokenCreated().dump(minted))  # the alternative response's schema
            response.status_code = 201
            return response
        return secrets.get(principal(), scope, key_name, reveal=True, version=version)

    @blp.route("/secrets:redeem", methods=["POST"], endpoint="redeem")
    @blp.doc(security=[])
    @blp.arguments(s.RedeemBody())
    @lean_response(blp, 200, s.SecretRecord, s.record_body, description="The plaintext, exactly once")
    @document_errors(blp, 410, 422, 429, 503)
    def redeem(body: dict[str, Any]) -> SecretView:
        """Redeem a single-use reveal token (no Authorization header: the token is the credential)."""
        return cases.reveal_tokens.redeem(body["token"], request.remote_addr, request_id())

    @blp.route(KEY_PATH + ":rotate", parameters=key_parameters(), methods=["POST"])
    @blp.response(200, s.SecretRecord, description="The rotated secret, masked (new data key, version+1)")
    @document_errors(blp, 401, 403, 404, 422, 429)
    def rotate_secret(owner_type: str, owner_id: str, key_name: str) -> Reply:
        """Re-encrypt under a fresh data key."""
        return _with_etag(cases.rotation.rotate_key(principal(), Scope.of(owner_type, owner_id), key_name))

    add_transfer_routes(blp, cases.transfer, idempotency)
    add_batch_routes(blp, cases.batch_reveal, _check_recent_auth)
    add_history_routes(blp, cases.history)
    return blp
