"""`/v1/auth` endpoints: the token exchange (RFC 8693), the OIDC settings for `login --oidc`, who-am-I and revoke.

The token endpoint speaks OAuth's own formats (a form in, RFC 6749 §5.2 JSON errors out), since OAuth clients
expect them; a rate limit or an outage keeps the API's problem+json. Every answer here carries
`Cache-Control: no-store`: they hold tokens, or say what a token may do.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

import marshmallow
from flask import Response, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from werkzeug.exceptions import BadRequest

from sprongus.adapters.problem_types import PROBLEM_JSON
from sprongus.domain.errors import InvalidGrant, InvalidTokenRequest, Unauthenticated, ValidationError
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.context import (
    authenticate,
    client_address,
    principal,
    record_refused,
    request_id,
    token,
)
from sprongus.entrypoints.api.input_rules import check_request
from sprongus.entrypoints.api.problems import problem
from sprongus.service.auditing import Auditor
from sprongus.service.federation import (
    ACCESS_TOKEN_TYPE,
    MAX_SUBJECT_TOKEN,
    SUBJECT_TOKEN_TYPES,
    TOKEN_EXCHANGE,
    TokenExchange,
    TokenRequest,
    TokenSelfService,
)
from sprongus.service.tokens import TokenService

FORM = "application/x-www-form-urlencoded"
MAX_FORM = 64 * 1024  # a subject token of 16 KiB, percent-encoded, and the other parameters
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1
AUTHENTICATED = ("auth.whoami", "auth.revoke")


class TokenForm(Schema):
    grant_type = fields.String(required=True, validate=validate.OneOf([TOKEN_EXCHANGE]))
    subject_token = fields.String(required=True, validate=validate.Length(1, MAX_SUBJECT_TOKEN),
                                  metadata={"description": "The JWT: an ID token or a workload's token"})
    subject_token_type = fields.String(required=True, validate=validate.OneOf(list(SUBJECT_TOKEN_TYPES)))


class TokenAnswer(Schema):
    access_token = fields.String(required=True, metadata={"description": "An API token, spr_..."})
    issued_token_type = fields.String(required=True, validate=validate.OneOf([ACCESS_TOKEN_TYPE]))
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer"]))
    expires_in = fields.Integer(required=True)
    scope = fields.String(required=True, metadata={"description": "The token's scopes, space-separated"})


class OAuthError(Schema):
    """RFC 6749 §5.2. One `invalid_grant` description for every JWT problem."""

    error = fields.String(required=True, validate=validate.OneOf(
        ["invalid_request", "invalid_grant", "unsupported_grant_type"]))
    error_description = fields.String()


class AuthConfig(Schema):
    issuer = fields.String(required=True)
    clientId = fields.String(allow_none=True)
    audience = fields.String(allow_none=True)


class WhoAmIAnswer(Schema):
    subject = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["operator", "workload", "user"]))
    trust = fields.String(allow_none=True)
    scopes = fields.List(fields.String(), required=True)
    projects = fields.List(fields.String(), required=True)
    keyPrefix = fields.String(required=True)
    tokenId = fields.String(required=True)
    expiresAt = s.Instant(required=True)
    authTime = s.Instant(required=True)
    authAgeSeconds = fields.Integer(required=True)


class RevokeBody(Schema):
    """RFC 7009: the token to revoke (default: the bearer token itself)."""

    class Meta:
        unknown = marshmallow.RAISE

    token = fields.String(validate=validate.Length(1, 4096))
    token_type_hint = fields.String(validate=validate.Length(max=64))


class Empty(Schema):
    pass


def _body(schema: type[Schema], *types: str) -> dict[str, Any]:
    return {"content": {kind: {"schema": schema} for kind in types}}


def auth_blueprint(exchange: TokenExchange, self_service: TokenSelfService, tokens: TokenService,
                   auditor: Auditor, oidc: Mapping[str, Any]) -> Blueprint:
    blp = Blueprint("auth", __name__, url_prefix="/v1/auth", description="Token exchange, who am I, revoke")

    @blp.before_request
    def _authenticate() -> None:
        if request.endpoint not in AUTHENTICATED:
            return  # the token endpoint's credential is the JWT; the OIDC settings are public
        try:
            authenticate(tokens)
        except Unauthenticated as refusal:
            record_refused(auditor, refusal)
            raise

    @blp.before_request
    def _check_body() -> None:
        # After authentication: a refused token is audited whatever the body holds. The token endpoint reads its
        # form itself, and answers even a JSON body in OAuth's format.
        if request.endpoint in AUTHENTICATED:
            check_request()

    @blp.after_request
    def _no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    @blp.route("/token", methods=["POST"])
    @blp.doc(security=[], requestBody={"required": True, **_body(TokenForm, FORM)})
    @blp.response(200, TokenAnswer, description="An API token for the JWT's trust")
    @blp.alt_response(400, schema=OAuthError, content_type="application/json",
                      description="invalid_grant (any JWT problem, all alike), invalid_request, "
                                  "unsupported_grant_type")
    @blp.alt_response(429, schema=s.Problem, content_type=PROBLEM_JSON, description="Rate limited (per address)")
    @blp.alt_response(503, schema=s.Problem, content_type=PROBLEM_JSON,
                      description="The identity provider's keys, the database or the audit trail are unavailable")
    def token_exchange() -> Any:
        """OAuth 2.0 Token Exchange (RFC 8693): a trusted JWT for an API token; each JWT is exchanged once."""
        try:
            done = exchange.exchange(_token_request(), client_address(), request_id())
        except (InvalidTokenRequest, InvalidGrant) as exc:
            body = {"error": exc.oauth_error, "error_description": exc.public_detail}
            return Response(json.dumps(body), 400, mimetype="application/json", headers=NO_STORE)
        return {"access_token": done.token.reveal(), "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer", "expires_in": done.expires_in, "scope": done.scope}, 200, NO_STORE

    @blp.route("/config", methods=["GET"])
    @blp.doc(security=[])
    @blp.response(200, AuthConfig, description="The OpenID Connect provider people sign in with")
    @blp.alt_response(404, schema=s.Problem, content_type=PROBLEM_JSON, description="No issuer is configured")
    def auth_config() -> Any:
        """The OpenID Connect settings `sprongus login --oidc` uses."""
        if not oidc.get("issuer"):
            return problem(404, "not-found", "Not found", "no OpenID Connect issuer is configured on this server")
        return {"issuer": oidc["issuer"], "clientId": oidc.get("client_id"), "audience": oidc.get("audience")}

    @blp.route("/whoami", methods=["GET"])
    @blp.response(200, WhoAmIAnswer, description="The bearer token's subject, kind, trust, scopes and times")
    @blp.alt_response(401, schema=s.Problem, content_type=PROBLEM_JSON, description="Missing or invalid token")
    def whoami() -> dict[str, Any]:
        """What the bearer token is (never the token itself)."""
        me = self_service.whoami(token())
        record = me.token
        return {"subject": record.subject, "kind": record.kind.value, "trust": record.trust,
                "scopes": sorted(p.value for p in record.permissions), "projects": sorted(record.projects),
                "keyPrefix": record.key_prefix, "tokenId": record.id, "expiresAt": record.expires_at,
                "authTime": record.auth_time, "authAgeSeconds": me.auth_age_seconds}

    @blp.route("/revoke", methods=["POST"])
    @blp.doc(requestBody={"required": False, **_body(RevokeBody, FORM, "application/json")})
    @blp.response(200, Empty, description="Revoked, or unknown (RFC 7009: the same answer)")
    @blp.alt_response(401, schema=s.Problem, content_type=PROBLEM_JSON, description="Missing or invalid token")
    @blp.alt_response(422, schema=s.Problem, content_type=PROBLEM_JSON, description="Invalid input")
    def revoke() -> dict[str, Any]:
        """Revoke the bearer token (logout), or the token named in `token` (RFC 7009): refused at once by this
        worker, by every other within SPRONGUS_TOKEN_CACHE_TTL (its token cache)."""
        self_service.revoke(principal(), token(), _token_to_revoke())
        return {}

    return blp


def _token_request() -> TokenRequest:
    """The form, read by hand: a parameter given twice is refused (RFC 6749 §3.2), and a body too large is refused
    without being read, let alone parsed."""
    if request.mimetype != FORM:
        return TokenRequest(refused=f"the body must be {FORM}")
    if request.content_length is not None and request.content_length > MAX_FORM:
        return TokenRequest(refused=f"the body must be at most {MAX_FORM} bytes")
    body = request.stream.read(MAX_FORM + 1)
    if len(body) > MAX_FORM:
        return TokenRequest(refused=f"the body must be at most {MAX_FORM} bytes")
    try:
        pairs = urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict",
                                       max_num_fields=32)
    except ValueError:  # raw non-ASCII, percent-escapes that are not UTF-8, too many fields
        return TokenRequest(refused="the body must be a well-formed form of UTF-8 parameters")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return TokenRequest(refused="a parameter is given more than once")
        params[name] = value
    return TokenRequest(params.get("grant_type"), params.get("subject_token"), params.get("subject_token_type"))


def _token_to_revoke() -> str | None:
    if request.mimetype == FORM:
        named = request.form.getlist("token")
        if len(named) > 1:
            raise ValidationError("token", "give it once")
        data: dict[str, Any] = {"token": named[0]} if named else {}
    elif request.is_json:
        # UTF-8 only, as every other endpoint reads JSON (webargs): Flask's get_json also takes UTF-16 and a BOM,
        # which the input rules, checking UTF-8 text, passed as malformed (repeated names, lone surrogates: a 500).
        try:
            document = json.loads(request.get_data(cache=True).decode("utf-8"))
        except ValueError:
            raise BadRequest() from None
        if not isinstance(document, dict):
            raise ValidationError("body", "must be a JSON object")
        data = document
    elif request.get_data(cache=True):
        raise ValidationError("body", f"must be {FORM} or application/json")
    else:
        return None
    try:
        loaded = RevokeBody().load(data)
    except marshmallow.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        errors = {("body" if field == "_schema" or field not in RevokeBody().fields else field):
                  (["unknown field"] if field not in RevokeBody().fields else list(rules))
                  for field, rules in messages.items()}
        first = next(iter(errors))
        raise ValidationError(first, "; ".join(errors[first]), errors=errors) from None
    named_token = loaded.get("token")
    return named_token if isinstance(named_token, str) else None
