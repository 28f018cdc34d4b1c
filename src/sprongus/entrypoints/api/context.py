"""Per-request context: request id, client address, the authenticated principal and its token."""

from __future__ import annotations

import re
import uuid
from typing import cast

from flask import g, request

from sprongus.domain.api_token import ApiToken
from sprongus.domain.errors import RepeatedRefusal, Unauthenticated
from sprongus.domain.principal import ANONYMOUS, Principal
from sprongus.domain.records import AuditAction, Outcome
from sprongus.service.auditing import Auditor
from sprongus.service.tokens import TokenService

# A client's id lands in audit rows, log lines and our answer: anything but this short, plain alphabet (a newline,
# a NUL, a forged JSON fragment, a megabyte) is replaced rather than carried along.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_AUDITED_PATH = 256


def request_id() -> str:
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
    return cast(str, g.request_id)


def client_address() -> str | None:
    return request.remote_addr


def authenticate(tokens: TokenService) -> None:
    """Resolve the bearer token once per request (before the view runs)."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        tokens.refuse(client_address(), "a bearer token is required (Authorization: Bearer spr_...)")
    g.principal, g.token = tokens.authenticate(credentials.strip(), request_id(), client_address())


def record_refused(auditor: Auditor, refusal: Unauthenticated) -> None:
    """A request refused for its token is audited like any other refusal, its path cut to MAX_AUDITED_PATH
    characters: anyone can send one, and a 4 KiB request line grew the trail by as much each time. Not a
    RepeatedRefusal: its address is past the audited refusals of the window (TokenService.refuse)."""
    if isinstance(refusal, RepeatedRefusal):
        return
    path = request.path if len(request.path) <= MAX_AUDITED_PATH else request.path[:MAX_AUDITED_PATH] + "..."
    auditor.record(Principal(ANONYMOUS, request_id=request_id(), client_address=client_address()),
                   AuditAction.AUTHENTICATE, None, None, None, Outcome.DENIED, method=request.method, path=path)


def principal() -> Principal:
    return cast(Principal, g.principal)


def token() -> ApiToken:
    return cast(ApiToken, g.token)
