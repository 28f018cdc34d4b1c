"""`/v1/secrets` endpoints: a thin adapter from HTTP to SecretsService (SPEC section 7)."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from sprongus.domain.errors import Conflict, IntegrityError, ValidationError
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditAction, Outcome
from sprongus.domain.scope import Scope
from sprongus.domain.service import SecretsService, parse_items
from sprongus.domain.tokens import StepUpRequired, TokenService, Unauthenticated
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.context import authenticate, principal, request_id, token
from sprongus.entrypoints.api.idempotency import Idempotency, json_response
from sprongus.entrypoints.api.problems import PROBLEM_JSON, PreconditionFailed
from sprongus.ports.tokens import RecentAuthVerifier

KEY_PATH = "/secrets/<owner_type>/<owner_id>/<key_name>"
ERRORS = {401: "Missing, invalid or expired token", 403: "Missing scope", 404: "Absent, or not yours",
          409: "The same Idempotency-Key is still in progress", 410: "Used, expired or unknown token",
          412: "If-Match names another version", 422: "Invalid input", 429: "Rate limited",
          503: "Audit or key provider unavailable: nothing was revealed"}


def _key_parameters() -> list[dict[str, Any]]:
    """Document the path's rules (SPEC section 2) so clients and fuzzers know them; the service enforces them."""
    return [{"in": "path", "name": "owner_type", "schema": {"type": "string", "enum": s.OWNER_TYPES}},
            {"in": "path", "name": "owner_id", "description": "`-` for the system scope",
             "schema": {"type": "string", "pattern": s.OWNER_ID_PATTERN}},
            {"in": "path", "name": "key_name",
             "schema": {"type": "string", "maxLength": 128, "pattern": s.KEY_NAME_PATTERN}}]


def _document_errors(blp: Blueprint, *statuses: int) -> Any:
    def decorate(view: Any) -> Any:
        for status in statuses:
            view = blp.alt_response(status, schema=s.Problem, content_type=PROBLEM_JSON,
                                    description=ERRORS.get(status, ""))(view)
        return view
    return decorate


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


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


def secrets_blueprint(service: SecretsService, tokens: TokenService, recent_auth: RecentAuthVerifier,
                      idempotency: Idempotency) -> Blueprint:
    blp = Blueprint("secrets", __name__, url_prefix="/v1", description="Secrets: masked reads, explicit reveals")

    auditor = service.deps.auditor

    @blp.before_request
    def _authenticate() -> None:
        if request.endpoint == "secrets.redeem":
            return
        try:
            authenticate(tokens)
        except Unauthenticated:  # a denied attempt is audited like any other
            anonymous = Principal("anonymous", request_id=request_id(), client_address=request.remote_addr)
            auditor.record(anonymous, AuditAction.AUTHENTICATE, None, None, None, Outcome.DENIED,
                           method=request.method, path=request.path)
            raise

    def _check_recent_auth(scope: Scope, key: str) -> None:
        try:
            recent_auth.check(token())
        except StepUpRequired:
            auditor.record(principal(), AuditAction.REVEAL, scope, key, None, Outcome.DENIED, reason="step-up")
            raise

    @blp.route("/secrets", methods=["GET"])
    @blp.arguments(s.ListQuery, location="query", as_kwargs=True)
    @blp.response(200, s.SecretPage)
    @_document_errors(blp, 401, 403, 404, 422)
    def list_secrets(ownerType: str, ownerId: str | None, prefix: str, withMeta: bool, limit: int,
                     cursor: str | None) -> Response:
        """List a scope's secrets, masked, by key name (keyset pagination)."""
        page = service.list(principal(), Scope.of(ownerType, ownerId), prefix, withMeta, cursor, limit)
        return json_response({"items": [v.to_dict(with_meta=withMeta) for v in page.items],
                              "nextCursor": page.next_cursor})

    @blp.route(KEY_PATH, parameters=_key_parameters(), methods=["GET"])
    @blp.response(200, s.SecretRecord, description="The masked record; ETag is its version")
    @_document_errors(blp, 401, 403, 404, 422)
    def get_secret(owner_type: str, owner_id: str, key_name: str) -> Response:
        """A secret's masked record with meta."""
        view = service.get(principal(), Scope.of(owner_type, owner_id), key_name)
        return json_response(view.to_dict(), headers=_etag(view.version))

    @blp.route(KEY_PATH, parameters=_key_parameters(), methods=["PUT"])
    @blp.arguments(s.PutBody)
    @blp.response(200, s.SecretRecord, description="Updated (201 when created); masked")
    @blp.alt_response(201, schema=s.SecretRecord, description="Created")
    @_document_errors(blp, 401, 403, 404, 409, 412, 422, 429)
    def put_secret(body: dict[str, Any], owner_type: str, owner_id: str, key_name: str) -> Response:
        """Create or update (version+1). Supports Idempotency-Key and If-Match."""
        scope = Scope.of(owner_type, owner_id)

        def write() -> Response:
            expected = _expected_version()
            try:
                result = service.set(principal(), scope, key_name, SecretValue(body["value"]), body["meta"], expected)
            except Conflict as exc:
                if expected is None:
                    raise
                raise PreconditionFailed(f"If-Match: the current version is {exc.current_version}") from None
            return json_response(result.view.to_dict(), 201 if result.created else 200, _etag(result.view.version))

        return idempotency.run(principal().subject, write)

    @blp.route(KEY_PATH, parameters=_key_parameters(), methods=["DELETE"])
    @blp.response(204)
    @_document_errors(blp, 401, 403, 404, 422, 429)
    def delete_secret(owner_type: str, owner_id: str, key_name: str) -> Response:
        """Delete a secret."""
        service.unset(principal(), Scope.of(owner_type, owner_id), key_name)
        return Response(status=204)

    @blp.route(KEY_PATH + ":reveal", parameters=_key_parameters(), methods=["POST"])
    @blp.arguments(s.RevealBody, required=False)
    @blp.response(200, s.SecretRecord, description="The plaintext, once, in `value`")
    @blp.alt_response(201, schema=s.RevealTokenCreated, description="A single-use reveal token (oneTime)")
    @_document_errors(blp, 401, 403, 404, 422, 429, 503)
    def reveal_secret(body: dict[str, Any], owner_type: str, owner_id: str, key_name: str) -> Response:
        """Reveal the plaintext (recent authentication required), or mint a single-use reveal token."""
        scope = Scope.of(owner_type, owner_id)
        _check_recent_auth(scope, key_name)
        if body.get("oneTime"):
            minted, expires = service.mint_reveal_token(principal(), scope, key_name, body.get("ttlSeconds", 300))
            return json_response({"token": minted, "expiresAt": expires}, 201)
        return json_response(service.get(principal(), scope, key_name, reveal=True).to_dict())

    @blp.route("/secrets:redeem", methods=["POST"], endpoint="redeem")
    @blp.doc(security=[])
    @blp.arguments(s.RedeemBody)
    @blp.response(200, s.SecretRecord, description="The plaintext, exactly once")
    @_document_errors(blp, 410, 422, 429, 503)
    def redeem(body: dict[str, Any]) -> Response:
        """Redeem a single-use reveal token (no Authorization header: the token is the credential)."""
        return json_response(service.redeem(body["token"], request.remote_addr, request_id()).to_dict())

    @blp.route(KEY_PATH + ":rotate", parameters=_key_parameters(), methods=["POST"])
    @blp.response(200, s.SecretRecord, description="The rotated secret, masked (new data key, version+1)")
    @_document_errors(blp, 401, 403, 404, 422, 429)
    def rotate_secret(owner_type: str, owner_id: str, key_name: str) -> Response:
        """Re-encrypt under a fresh data key."""
        scope = Scope.of(owner_type, owner_id)
        service.rotate(principal(), scope, key_name)
        view = service.get(principal(), scope, key_name)
        return json_response(view.to_dict(), headers=_etag(view.version))

    @blp.route("/secrets:import", methods=["POST"])
    @blp.arguments(s.ImportBody)
    @blp.response(200, s.ImportResult)
    @_document_errors(blp, 401, 403, 404, 409, 422, 429)
    def import_secrets(body: dict[str, Any]) -> Response:
        """Atomic import of plaintext items (allowPlaintext) or of a bundle. Supports Idempotency-Key."""
        def run() -> Response:
            items = parse_items(body["items"]) if body["items"] is not None else None
            passphrase = SecretValue(body["passphrase"]) if body.get("passphrase") else None
            try:
                report = service.import_(principal(), items=items, bundle=body["bundle"], mode=body["mode"],
                                         allow_plaintext=body["allowPlaintext"], passphrase=passphrase,
                                         prefix=body["prefix"], dry_run=body["dryRun"])
            except IntegrityError:  # the client's bundle failed its check: bad input, not a server fault
                raise ValidationError("bundle", "integrity check failed: tampered, truncated or wrong "
                                      "key/passphrase") from None
            return json_response(report.to_dict())

        return idempotency.run(principal().subject, run)

    @blp.route("/secrets:export", methods=["GET"])
    @blp.arguments(s.ExportQuery, location="query", as_kwargs=True)
    @blp.response(200, s.ExportResult, description="Metadata (never values), or a bundle")
    @_document_errors(blp, 401, 403, 404, 422, 429)
    def export_secrets(ownerType: str, ownerId: str | None, prefix: str, bundle: bool) -> Response:
        """Export metadata, or an encrypted bundle (needs secrets:reveal)."""
        scope = Scope.of(ownerType, ownerId)
        result = service.export(principal(), scope, prefix, bundle)
        if bundle:
            return json_response(result.bundle)
        items = [{k: v for k, v in view.to_dict().items() if k not in ("value", "masked")} for view in result.items]
        return json_response({"format": "sprongus.metadata.v1", "scope": str(scope), "prefix": prefix,
                              "items": items})

    return blp
