"""Idempotency-Key (IETF draft, Stripe semantics): replay, 422 on another request, 409 while in flight."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, ClassVar

from flask import Response, g, request

from sprongus.domain.errors import Conflict, IntegrityError, ValidationError
from sprongus.ports.clock import Clock
from sprongus.ports.crypto import HmacKeyring
from sprongus.ports.tokens import IdempotencyStore, StoredResponse

REPLAYED_HEADERS = ("Content-Type", "ETag", "Cache-Control", "Location")
MAX_KEY = 255


class IdempotencyConflict(Conflict):
    """The first request with this key is still running."""

    public: ClassVar[str | None] = None  # a fixed message


# Called with the stored answer about to be replayed (None when there is none: the first request still runs, or
# this is another request) and the view's arguments; raises when this caller may not have that answer.
Precheck = Callable[..., None]
# Called with the view's arguments before the key is looked up or stored: validation and permissions, without
# counting the rate limit (the view or the precheck counts it). A caller refused here leaves no row behind, and
# costs no fingerprint of its body.
Authorize = Callable[..., None]


def _grants() -> bytes:
    """What the caller may see, part of what a key stands for. Keys are per subject, so that a retry with the
    subject's renewed token replays; but another token of the subject with less (a key prefix, no read) sending
    the same body got the first answer: an import report naming keys outside its prefix. Now that is another
    request (422), after that token's own checks."""
    caller = g.principal
    permissions = ",".join(sorted(p.value for p in caller.permissions))
    return f"{permissions}|{','.join(sorted(caller.projects))}|{caller.key_prefix}".encode()


class Idempotency:
    def __init__(self, store: IdempotencyStore, clock: Clock, hmac_keys: HmacKeyring,
                 derive: Callable[[bytes], bytes]) -> None:
        """`derive` turns a value-HMAC key into the fingerprint key (never the value key itself)."""
        self._store = store
        self._clock = clock
        self._hmac_keys = hmac_keys
        self._derive = derive

    def fingerprint(self, subject: str, like: str | None = None) -> str:
        """Keyed, so the stored fingerprint of a PUT reveals nothing about its value: `hmac:<key id>:<mac>`.

        The key is looked up per request, not fixed at start-up (a vault's HMAC key may be made after a worker
        started, or rotated), and a stored fingerprint is recomputed `like` it was made, with the key it names:
        a retry that reaches another worker, or comes after `keys rotate-hmac`, still matches."""
        material = b"\n".join([request.method.encode(), request.path.encode(), _grants(), request.get_data()])
        if like is None or like.startswith("hmac:"):
            named = like[len("hmac:"):].rpartition(":")[0] if like else ""
            key_id = named or self._hmac_keys.current_key_id()
            if key_id is not None:
                try:
                    key = self._derive(self._hmac_keys.key(key_id))
                except IntegrityError:
                    return ""  # a key this vault no longer knows: nothing can match it
                mac = base64.b64encode(hmac.digest(key, material, "sha256")).decode()
                return f"hmac:{key_id}:{mac}" if named or like is None else f"hmac:{mac}"
        salt = hashlib.sha256(subject.encode()).digest()  # no HMAC key configured: a slow, salted digest
        return "scrypt:" + base64.b64encode(hashlib.scrypt(material, salt=salt, n=2**14, r=8, p=1)).decode()

    def guard(self, precheck: Precheck, authorize: Authorize) -> Callable[[Callable[..., Response]],
                                                                          Callable[..., Response]]:
        """Decorates a view that already returns a serialized Response (place it above @blp.response).

        `authorize` gets the view's arguments and runs before the key is stored or looked up. `precheck` gets the
        stored answer and the view's arguments: the checks the view's use case would make before acting
        (permissions, the rate limit), run before anything stored is used.
        """
        def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
            @functools.wraps(view)
            def guarded(*args: Any, **kwargs: Any) -> Response:
                return self.run(g.principal.subject, lambda: view(*args, **kwargs),
                                lambda stored: precheck(stored, *args, **kwargs),
                                lambda: authorize(*args, **kwargs))
            return guarded
        return decorate

    def run(self, subject: str, handler: Callable[[], Response],
            precheck: Callable[[StoredResponse | None], None] | None = None,
            authorize: Callable[[], None] | None = None) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler()
        if not key or len(key) > MAX_KEY:
            raise ValidationError("Idempotency-Key", f"must be 1-{MAX_KEY} characters")
        if authorize is not None:
            authorize()  # before the fingerprint and the stored row: a refused caller leaves nothing behind
        fingerprint = self.fingerprint(subject)
        existing = self._store.begin(subject, key, fingerprint, self._clock.now())
        if existing is not None:
            # Keys are per subject, not per token: another token of the same subject (read-only, say) must pass
            # the first request's checks before it sees the stored answer, or even learns the key is in use.
            same = hmac.compare_digest(existing.fingerprint, self.fingerprint(subject, like=existing.fingerprint))
            if precheck is not None:
                precheck(existing.response if same else None)  # the answer that would be replayed, if any
            if not same:
                raise ValidationError("Idempotency-Key", "was already used with a different request")
            if existing.response is None:
                raise IdempotencyConflict("a request with this Idempotency-Key is still in progress")
            replay = Response(existing.response.body, status=existing.response.status)
            replay.headers.update(existing.response.headers)
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = handler()
        except BaseException:
            self._store.abandon(subject, key)  # nothing was stored: a retry must be able to run
            raise
        if response.status_code >= 500 or response.status_code in (409, 429):
            self._store.abandon(subject, key)
        else:
            headers = {h: response.headers[h] for h in REPLAYED_HEADERS if h in response.headers}
            self._store.finish(subject, key, StoredResponse(response.status_code, response.get_data(as_text=True),
                                                            headers))
        return response
