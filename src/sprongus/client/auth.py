"""The client's bearer token: a fixed one (SPRONGUS_TOKEN), or one exchanged for a workload's JWT and renewed.

A workload's JWT file (a Kubernetes projected service-account token, a CI job's ID token) is exchanged at
POST /v1/auth/token for a short-lived API token. The API exchanges a JWT once only (a leaked copy is worthless
afterwards), so the token is renewed with the file's next JWT: the kubelet writes a fresh one before the old one
expires. The file is read again while the token nears its end; once it holds a new JWT, that one is exchanged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sprongus.adapters.oidc_device import read_jwt_file
from sprongus.domain.errors import SprongusError, Unauthenticated
from sprongus.domain.values import SecretValue

log = logging.getLogger("sprongus.client")

TOKEN_FILE_SETTING = "SPRONGUS_OIDC_TOKEN_FILE"  # noqa: S105 - the name of a setting
RENEW_SHARE, RENEW_FLOOR = 0.2, 60.0  # renew once less than a fifth of the life, or than a minute, is left
EXPIRY_SHARE, EXPIRY_MARGIN = 0.25, 10.0  # "about to expire": under 10 s, or a quarter of a very short life
USED_KEPT = 16  # digests of the JWTs used up here: enough to recognise any file the kubelet could put back
# After a failed renewal while the token still serves, calls use it for this long before trying again: an exchange
# endpoint that is down must not cost every call its retries (under the lock, so every thread's).
RENEW_PAUSE = 5.0

# A JWT for (the API token, its lifetime in seconds when the server says). Raises the domain's errors.
Exchange = Callable[[SecretValue], tuple[SecretValue, int | None]]


class TokenSource(Protocol):
    def bearer(self) -> SecretValue:
        """The token for the next request; raises the domain's errors when there is none to be had."""
        ...

    def rejected(self, used: SecretValue) -> bool:
        """The API answered 401 to `used`: True when a fresh bearer() is worth one more try."""
        ...


class FixedToken:
    """An API token given as it is: nothing to renew."""

    def __init__(self, token: str | SecretValue) -> None:
        self._token = token if isinstance(token, SecretValue) else SecretValue(token)

    def bearer(self) -> SecretValue:
        return self._token

    def rejected(self, used: SecretValue) -> bool:
        return False

    def __repr__(self) -> str:
        return "FixedToken(********)"


class ExchangedToken:
    """The JWT in `path` exchanged for an API token, renewed with the file's next JWT. Thread-safe: one lock around
    reading the file and exchanging, so concurrent requests share one exchange (a second would be refused)."""

    def __init__(self, path: Path, exchange: Exchange, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._exchange = exchange
        self._clock = clock
        self._lock = threading.Lock()
        self._token: SecretValue | None = None
        self._expires: float | None = None  # on `clock`; None: the server named no lifetime
        self._life = 0.0
        self._paused_until = 0.0  # on `clock`
        self._used: deque[str] = deque(maxlen=USED_KEPT)  # exchanged here
        self._refused: deque[str] = deque(maxlen=USED_KEPT)  # refused by the API (invalid_grant)

    def __repr__(self) -> str:
        return f"ExchangedToken({str(self.path)!r})"

    def bearer(self) -> SecretValue:
        with self._lock:
            if self._token is None:
                return self._renew(forced=True)
            if self._expires is not None and self._expires - self._clock() < max(RENEW_SHARE * self._life,
                                                                                   RENEW_FLOOR):
                return self._renew(forced=False)
            return self._token

    def rejected(self, used: SecretValue) -> bool:
        with self._lock:
            if self._token is used:  # else another thread has renewed it since this request was sent
                self._token = None
                self._renew(forced=True)
            return True

    def _renew(self, *, forced: bool) -> SecretValue:
        """The file's JWT exchanged; unless `forced`, the current token while it is not about to expire and the
        file holds no JWT that can be exchanged (not renewed yet, or the exchange failed: tried again next call)."""
        left = None if self._expires is None else self._expires - self._clock()
        usable = None if forced or (left is not None and left <= self._margin()) else self._token
        if usable is not None and self._clock() < self._paused_until:
            return usable
        try:
            jwt = read_jwt_file(self.path)
            digest = hashlib.sha256(jwt.encode()).hexdigest()
            if digest in self._refused:
                raise Unauthenticated(f"{TOKEN_FILE_SETTING}: {self.path} still holds the JWT the API refused "
                                      "(invalid_grant); the file must hold a new one")
            if digest in self._used:
                if usable is not None:
                    return usable  # the kubelet has not rotated the file yet
                raise Unauthenticated(self._stale_message(left, forced))
            started = self._clock()
            token, expires_in = self._exchange_once(jwt, digest)
        except SprongusError as exc:
            if usable is None:
                raise
            log.warning("the API token could not be renewed from %s (%s); the current one serves on", self.path, exc)
            self._paused_until = self._clock() + RENEW_PAUSE
            return usable
        self._used.append(digest)
        self._token = token
        self._expires = None if expires_in is None else started + expires_in
        self._life = float(expires_in or 0)
        log.info("exchanged the JWT in %s for an API token (%s)", self.path,
                 "no lifetime given" if expires_in is None else f"expires in {expires_in} s")
        return token

    def _exchange_once(self, jwt: SecretValue, digest: str) -> tuple[SecretValue, int | None]:
        """A refused JWT (invalid_grant) is remembered: sending it again would only be refused again. Any other
        failure leaves it unused (the API asked to wait, or there was no answer), so the next call tries it again;
        had the server exchanged it after all, it then answers invalid_grant, which is said as such."""
        try:
            return self._exchange(jwt)
        except Unauthenticated as exc:
            self._refused.append(digest)
            raise Unauthenticated(f"{TOKEN_FILE_SETTING}: {self.path}: {exc}") from None

    def _margin(self) -> float:
        return min(EXPIRY_MARGIN, EXPIRY_SHARE * self._life)

    def _stale_message(self, left: float | None, forced: bool) -> str:
        why = ("the API refused the token it was exchanged for (revoked or expired)" if forced or left is None
               else f"the API token it was exchanged for expires in {max(left, 0):.0f} s")
        return (f"{TOKEN_FILE_SETTING}: {self.path} still holds a JWT that was already exchanged, and {why}; a JWT "
                "is exchanged only once, so the file must hold a new one (the kubelet rewrites a projected "
                "service-account token well before it expires; a CI job fetches a new ID token)")
