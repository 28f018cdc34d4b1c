"""RFC 8628 device authorization grant: the state an authorization server keeps, and its answers (no HTTP here).

`DeviceAuthorization` is mixed into `OidcIssuer`, which serves `_device_authorize` and `_device_token` over HTTP
and supplies `_tokens_for` (the token response for an approved grant).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 section 6.1: no vowels, nothing that reads as another char

Answer = tuple[int, dict[str, Any]]


@dataclass
class DeviceGrant:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float  # time.monotonic()
    status: str = "pending"  # pending -> approved | denied; approved -> redeemed
    subject: str | None = None
    email: str | None = None
    auth_time: int | None = None  # when the user approved (seconds since the epoch)
    polls: int = 0


def _error(code: str, description: str | None = None) -> Answer:
    return 400, {"error": code, **({"error_description": description} if description else {})}


def _normalise(user_code: str) -> str:
    return "".join(char for char in user_code.upper() if char.isalnum())


class DeviceAuthorization:
    """Device requests, the user's decision (made by the test) and the /token polling answers of RFC 8628 3.5."""

    url: str

    def __init__(self) -> None:
        self.device_code_lifetime: float = 600  # seconds; then polls answer expired_token
        self.poll_interval: int = 1  # the `interval` handed out; 0 for fast tests
        self.slow_down_once = False  # the next poll answers slow_down
        self.token_polls = 0
        self.device_requests: list[dict[str, str]] = []  # every form received at /device/authorize
        self.grants: list[DeviceGrant] = []
        self._auto: tuple[str, str | None, int] | None = None  # (subject, email, after_polls)
        self._state = threading.Condition()

    # -- the test plays the user -------------------------------------------------------------------------------

    def approve(self, user_code: str | None = None, subject: str = "alice", email: str | None = None) -> str:
        """Approves a pending request (the newest if `user_code` is None); returns its user code."""
        with self._state:
            grant = self._pending(user_code)
            grant.status, grant.subject, grant.email, grant.auth_time = "approved", subject, email, int(time.time())
            return grant.user_code

    def deny(self, user_code: str | None = None) -> str:
        """The user says no: polls answer access_denied. Returns the user code."""
        with self._state:
            grant = self._pending(user_code)
            grant.status = "denied"
            return grant.user_code

    def auto_approve(self, subject: str | None = "alice", after_polls: int = 1, email: str | None = None) -> None:
        """Every pending request is approved once it has been polled `after_polls` times (0: the first poll gets
        tokens; 1: the first poll answers authorization_pending, the second gets tokens). subject=None turns it off."""
        with self._state:
            self._auto = None if subject is None else (subject, email, after_polls)

    def wait_for_device_request(self, timeout: float = 5.0) -> str:
        """Blocks until a request is pending (e.g. a CLI in a subprocess started a login); returns its user code."""
        with self._state:
            if not self._state.wait_for(lambda: any(g.status == "pending" for g in self.grants), timeout):
                raise TimeoutError(f"no device authorization request within {timeout}s")
            return self._pending(None).user_code

    def _pending(self, user_code: str | None) -> DeviceGrant:
        wanted = None if user_code is None else _normalise(user_code)
        for grant in reversed(self.grants):
            if grant.status == "pending" and wanted in (None, _normalise(grant.user_code)):
                return grant
        raise LookupError(f"no pending device request{f' with user code {user_code!r}' if user_code else ''}")

    # -- what the endpoints answer -----------------------------------------------------------------------------

    def _device_authorize(self, form: dict[str, str]) -> Answer:
        """RFC 8628 3.1/3.2."""
        with self._state:
            self.device_requests.append(form)
            if not form.get("client_id"):
                return _error("invalid_request", "client_id is required")
            code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
            grant = DeviceGrant(device_code=secrets.token_urlsafe(32), user_code=f"{code[:4]}-{code[4:]}",
                                client_id=form["client_id"], scope=form.get("scope", ""),
                                expires_at=time.monotonic() + self.device_code_lifetime)
            self.grants.append(grant)
            self._state.notify_all()
        return 200, {"device_code": grant.device_code, "user_code": grant.user_code,
                     "verification_uri": f"{self.url}/device",
                     "verification_uri_complete": f"{self.url}/device?user_code={grant.user_code}",
                     "expires_in": math.ceil(self.device_code_lifetime), "interval": self.poll_interval}

    def _device_token(self, form: dict[str, str]) -> Answer:
        """RFC 8628 3.4/3.5: one poll of the token endpoint."""
        with self._state:
            self.token_polls += 1
            if form.get("grant_type") != DEVICE_GRANT:
                return _error("unsupported_grant_type", f"only {DEVICE_GRANT} is served here")
            grant = next((g for g in self.grants if g.device_code == form.get("device_code")), None)
            if grant is None or grant.client_id != form.get("client_id"):
                return _error("invalid_grant", "unknown device_code for this client_id")
            if time.monotonic() >= grant.expires_at:
                return _error("expired_token")
            if self.slow_down_once:
                self.slow_down_once = False
                return _error("slow_down")
            if grant.status == "pending" and self._auto is not None and grant.polls >= self._auto[2]:
                grant.status, grant.subject, grant.email = "approved", self._auto[0], self._auto[1]
                grant.auth_time = int(time.time())
            grant.polls += 1
            if grant.status != "approved":
                return _error({"pending": "authorization_pending", "denied": "access_denied"}.get(
                    grant.status, "invalid_grant"))
            grant.status = "redeemed"  # a device code is good for one token response
        return 200, self._tokens_for(grant)

    def _tokens_for(self, grant: DeviceGrant) -> dict[str, Any]:
        raise NotImplementedError
