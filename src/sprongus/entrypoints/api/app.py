"""The Flask application factory: a thin adapter wiring HTTP to the container's services."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from sprongus import __version__
from sprongus.domain.errors import SprongusError
from sprongus.domain.redaction import install_log_redaction
from sprongus.entrypoints.api.audit_api import audit_blueprint
from sprongus.entrypoints.api.auth_api import auth_blueprint
from sprongus.entrypoints.api.context import client_address, request_id
from sprongus.entrypoints.api.health import health_blueprint, readiness
from sprongus.entrypoints.api.idempotency import Idempotency
from sprongus.entrypoints.api.input_rules import BODY_SIZE_RULE, SMALL_BODY, check_request
from sprongus.entrypoints.api.problems import PROBLEM_JSON, from_domain_error, problem
from sprongus.entrypoints.api.schemas import Problem
from sprongus.entrypoints.api.secrets_api import UseCases, secrets_blueprint
from sprongus.entrypoints.storage import release_connection, serve_many_writers

if TYPE_CHECKING:
    from sprongus.entrypoints.container import Container

access_log = logging.getLogger("sprongus.api.access")
log = logging.getLogger("sprongus.api")
UNKNOWN_FIELD = "Unknown field."  # marshmallow's message for a field the schema does not declare
IDEMPOTENCY_KEY_INFO = b"sprongus idempotency fingerprint v1"


class ApiJsonProvider(DefaultJSONProvider):
    """Bodies as the API has always written them: keys in schema order, json.dumps' separators, no newline."""

    sort_keys = False

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = self.dumps(self._prepare_response_obj(args, kwargs))
        return Response(body, mimetype=self.mimetype)


class SprongusFlask(Flask):
    """Flask asks, for each hook and view of every request, whether it is a coroutine function (an `inspect` call
    each, ten a request here): the answer for a function does not change, so it is kept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Any, Any] = {}

    def ensure_sync(self, func: Any) -> Any:
        synced = self._sync.get(func)
        if synced is None:
            synced = self._sync[func] = super().ensure_sync(func)
        return synced


class ProblemApi(Api):  # type: ignore[misc]
    """flask-smorest documents errors as its own application/json schema; ours are RFC 9457 problem+json."""

    ERROR_SCHEMA = Problem

    def _register_responses(self) -> None:
        response = {"description": "Error (RFC 9457 problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


def create_app(container: Container | None = None) -> Flask:
    """`gunicorn 'sprongus.entrypoints.api:create_app()'` builds the container from the environment."""
    if container is None:
        from sprongus.entrypoints.container import build_container

        container = build_container()
    install_log_redaction()
    app = SprongusFlask("sprongus")
    app.json = ApiJsonProvider(app)
    app.config.update(API_TITLE="sprongus", API_VERSION=__version__, OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/v1", OPENAPI_JSON_PATH="openapi.json", MAX_CONTENT_LENGTH=SMALL_BODY,
                      API_SPEC_OPTIONS={"security": [{"bearerAuth": []}],
                                        "info": {"description": "SecretKV: masked reads, explicit reveals"}})
    api = ProblemApi(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    # The HMAC keys are looked up per request: at start-up they may not exist yet, or their store may be down.
    idempotency = Idempotency(container.idempotency_store(), container.clock(), container.hmac_keys(),
                              fingerprint_key)
    cases = UseCases(container.secret_ops(), container.transfer_ops(), container.rotation_ops(),
                     container.reveal_token_ops(), container.service_deps().auditor, container.batch_reveal_ops(),
                     container.history_ops())
    blueprint = secrets_blueprint(cases, container.token_service(), container.recent_auth(), idempotency)
    blueprint.before_request(check_request)  # after the blueprint's authentication: a refused token is audited
    api.register_blueprint(blueprint)
    api.register_blueprint(health_blueprint(readiness(container)))
    api.register_blueprint(audit_blueprint(container.audit_reader(), container.token_service(),
                                           container.service_deps().auditor))
    api.register_blueprint(auth_blueprint(container.token_exchange(), container.token_self_service(),
                                          container.token_service(), container.service_deps().auditor,
                                          container.config.oidc()))
    storage = container.storage()
    serve_many_writers(storage)
    app.teardown_appcontext(lambda _exc: release_connection(storage))  # back to the pool, checked on next use
    proxies = container.config.api.trusted_proxies()
    if proxies:  # behind N reverse proxies: the client address (rate limits, audit) comes from X-Forwarded-For
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    _register_error_handlers(app)
    _register_access_log(app)
    app.extensions["sprongus.container"] = container
    return app


def fingerprint_key(value_hmac_key: bytes) -> bytes:
    """One key, one purpose: the value-HMAC key itself signed idempotency fingerprints too, so a stored
    fingerprint was a MAC under the key that authenticates values. HKDF gives an independent key for it."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=IDEMPOTENCY_KEY_INFO).derive(value_hmac_key)


def loggable(text: str) -> str:
    """Client text in a log line, escaped: a raw newline in a path forged whole log lines."""
    return text.encode("unicode_escape").decode("ascii")


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(SprongusError)
    def domain_error(exc: SprongusError) -> Response:
        return from_domain_error(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        if status == 422:
            return problem(422, "validation", "Invalid request", "the request failed validation",
                           _field_errors(getattr(exc, "data", {}).get("messages", {})), headers)
        detail = {400: "malformed JSON or request", 413: BODY_SIZE_RULE}.get(status, exc.description)
        return problem(status, f"http-{status}", exc.name, detail, headers=headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.error("unexpected %s in %s %s", type(exc).__name__, loggable(request.method), loggable(request.path))
        return problem(500, "internal", "Internal server error", "unexpected error; see the server log "
                       f"(request id {request_id()})")


def _field_errors(messages: Any) -> dict[str, list[str]]:
    """Webargs nests messages by location ({"json": {"value": [...]}}): flatten to {"value": [...]}.

    An unknown field's name is the client's text, not a field of ours: it is reported as `body` (or the query),
    since an error answer repeats no request text.
    """
    errors: dict[str, list[str]] = {}

    def walk(node: Any, path: str, location: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else str(key), location)
        elif isinstance(node, list) and all(isinstance(x, str) for x in node):
            if node == [UNKNOWN_FIELD]:
                errors.setdefault("query" if location == "query" else "body", []).append("unknown field")
            else:
                errors.setdefault(path or "body", []).extend(node)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}[{index}]", location)
    for location, tree in messages.items() if isinstance(messages, dict) else []:
        walk(tree, "", str(location))
    return errors


def _register_access_log(app: Flask) -> None:
    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()
        request_id()

    @app.after_request
    def log_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = request_id()
        if request.path.startswith("/v1/secrets"):
            response.headers["Cache-Control"] = "no-store"
        if request.blueprint == "health" and response.status_code < 400:
            return response  # a probe every few seconds would drown the log; a failing one is logged
        principal = g.get("principal")
        # JSON, so the client's path and forwarded address are escaped (ensure_ascii): no forged lines.
        access_log.info(json.dumps({
            "method": request.method, "path": request.path, "status": response.status_code,
            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
            "subject": principal.subject if principal is not None else None,
            "requestId": request_id(), "client": client_address()}))
        return response
