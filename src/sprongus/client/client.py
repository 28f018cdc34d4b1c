"""`Client`: the REST API for applications, in a few typed calls."""

from __future__ import annotations

import builtins
import functools
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sprongus.adapters.http_client import advancing, history_from_dict
from sprongus.adapters.oidc_device import EXCHANGE_GRANT, JWT_TOKEN_TYPE
from sprongus.client.auth import TOKEN_FILE_SETTING, ExchangedToken, FixedToken, TokenSource
from sprongus.client.cache import RevealCache
from sprongus.client.records import SecretInfo
from sprongus.client.retry import MAX_WAIT, Retrier
from sprongus.client.transport import Answer, Http, HttpFailure, Payload, checked_base
from sprongus.domain.api_token import TOKEN_TEXT
from sprongus.domain.credentials import token_text
from sprongus.domain.errors import (
    ConfigError,
    PermissionDenied,
    RemoteUnavailable,
    StepUpRequired,
    Unauthenticated,
    ValidationError,
)
from sprongus.domain.history import History
from sprongus.domain.meta import validate_meta
from sprongus.domain.names import validate_key_name, validate_prefix, validate_version
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue

MAX_BATCH = 1000  # keys per POST /v1/secrets:reveal: the API refuses more
PAGE = 500  # records per listing request: the API's largest page
URL_SETTING, TOKEN_SETTING = "SPRONGUS_API_URL", "SPRONGUS_TOKEN"
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # the API's rule: 1-255 characters, printable, no spaces
T = TypeVar("T")


def _scope(scope: str | Scope) -> Scope:
    return scope if isinstance(scope, Scope) else Scope.parse(scope)


def _path(scope: Scope, key: str) -> str:
    return f"/secrets/{scope.owner_type.value}/{scope.url_owner_id}/{validate_key_name(key)}"


def _owner(scope: Scope) -> dict[str, str]:
    return {"ownerType": scope.owner_type.value, **({"ownerId": scope.owner_id} if scope.owner_id else {})}


class Client:
    """The sprongus REST API for an application: reveal, read, write and list secrets with one API token.

    `scope` is `"project:shop"`, `"user:alice"`, `"system"` or a `Scope`. Failures raise the domain's errors
    (`NotFound`, `PermissionDenied`, `Unauthenticated`, `RateLimited`, `Unavailable`, `ValidationError`, ...: all
    `SprongusError`), whose messages never hold a value or a token. Safe to share between threads.

    - `token`: an API token (`spr_...`); or `token_file`: a file holding a JWT the API trusts (a Kubernetes
      projected service-account token, a CI job's ID token), exchanged at POST /v1/auth/token and renewed with the
      file's next JWT before it expires.
    - `timeout`: seconds to connect, for each wait on the answer, and for its body as a whole (a server dripping it
      is RemoteUnavailable); not a deadline for the whole request, retries included.
      `retries`: how often a call is tried again after a 429 or a 503 (after the server's Retry-After, plus
      jitter, when it names one, else a doubling back-off), and, for reads, reveals and writes (sent with an
      Idempotency-Key), after no answer at all. A server asking to wait longer than
      `max_retry_wait` seconds is not waited for: the error is raised at once.
    - `cache_ttl`: seconds a revealed value is reused without asking the API again (0, the default: never).
    """

    def __init__(self, api_url: str, token: str | None = None, *, token_file: str | os.PathLike[str] | None = None,
                 timeout: float = 10, retries: int = 3, cache_ttl: float = 0,
                 max_retry_wait: float = MAX_WAIT) -> None:
        if not (timeout > 0 and math.isfinite(timeout)) or isinstance(retries, bool) or not isinstance(retries, int) \
                or retries < 0 or not 0 <= cache_ttl < math.inf or not max_retry_wait >= 0:
            raise ConfigError("timeout must be positive and finite, cache_ttl finite; retries, cache_ttl and "
                              "max_retry_wait not negative")
        self._http = Http(api_url, timeout)
        self._retrier = Retrier(retries, max_retry_wait)
        self._auth: TokenSource
        if token is not None and token_file is None:
            self._auth = FixedToken(token_text("token", token) if isinstance(token, str) else
                                    SecretValue(token_text("token", token.reveal())))
        elif token_file is not None and token is None:
            self._auth = ExchangedToken(Path(token_file).expanduser(), self._exchange)
        else:
            raise ConfigError("give the client one of an API token and a token_file holding a JWT")
        self._cache = RevealCache(cache_ttl)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, timeout: float = 10, retries: int = 3,
                 cache_ttl: float = 0, max_retry_wait: float = MAX_WAIT) -> Client:
        """A client for SPRONGUS_API_URL with SPRONGUS_TOKEN, or else with the JWT in SPRONGUS_OIDC_TOKEN_FILE,
        as the CLI's `--remote` reads them. `environ` defaults to the process environment."""
        env = os.environ if environ is None else environ
        url, token, token_file = env.get(URL_SETTING), env.get(TOKEN_SETTING), env.get(TOKEN_FILE_SETTING)
        if not token and not token_file:
            raise ConfigError(f"no API token: set {TOKEN_SETTING}, or {TOKEN_FILE_SETTING} to a file holding a JWT "
                              "the API trusts")
        checked_base(url or "", URL_SETTING)  # the errors name the variables, not the arguments
        token = token_text(TOKEN_SETTING, token) if token else token
        client = cls(url or "", token or None, token_file=None if token else token_file, timeout=timeout,
                     retries=retries, cache_ttl=cache_ttl, max_retry_wait=max_retry_wait)
        client._http.setting = URL_SETTING
        return client

    @property
    def api_url(self) -> str:
        """The API's base URL, ending in /v1."""
        return self._http.base

    def __repr__(self) -> str:
        return (f"Client({self._http.base!r}, auth={self._auth!r}, retries={self._retrier.retries}, "
                f"cache_ttl={self._cache.ttl})")

    # -- values ------------------------------------------------------------------------------------------------

    def reveal(self, scope: str | Scope, key: str, version: int | None = None) -> str:
        """The plaintext of one secret (an audited, rate-limited reveal; served from the cache when it is on), or
        of one of its kept versions (`version`: never cached)."""
        where = _scope(scope)
        path = _path(where, key)
        if version is not None:
            answer = self._call("POST", path + ":reveal", body=Payload({"version": validate_version(version)}))
            return _parse(answer, lambda doc: SecretValue(doc["value"])).reveal()
        cached = self._cache.get(str(where), key)
        if cached is not None:
            return cached.reveal()
        ticket = self._cache.ticket()
        answer = self._call("POST", path + ":reveal", body=Payload({}))
        value = _parse(answer, lambda doc: SecretValue(doc["value"]))
        self._cache.put(str(where), {key: value}, ticket)
        return value.reveal()

    def reveal_many(self, scope: str | Scope, prefix: str | None = None,
                    keys: Iterable[str] | None = None) -> dict[str, str]:
        """Plaintexts by key name: of `keys`, of the keys starting with `prefix`, or (neither) of the whole scope.

        One request (one audited batch reveal) per 1,000 keys. Requested keys that are absent, or out of the
        token's reach, are left out of the answer: compare it with `keys` to find them.
        """
        where = _scope(scope)
        if prefix is not None and keys is not None:
            raise ValidationError("keys", "give either keys or a prefix, not both")
        if keys is None:
            values = self._reveal_prefix(where, validate_prefix(prefix))
        elif isinstance(keys, str):
            raise ValidationError("keys", "must be a list of key names, not one string")
        else:
            values = self._reveal_keys(where, sorted({validate_key_name(k, "keys") for k in keys}))
        return {key: value.reveal() for key, value in values.items()}

    def clear_cache(self) -> None:
        """Forget every cached value: the next reveals ask the API."""
        self._cache.clear()

    # -- records -----------------------------------------------------------------------------------------------

    def get(self, scope: str | Scope, key: str, version: int | None = None) -> SecretInfo:
        """A secret's facts (version, times, tags), masked: no reveal, no value; `version`: a kept version's."""
        query = None if version is None else {"version": validate_version(version)}
        answer = self._call("GET", _path(_scope(scope), key), query=query)
        return _parse(answer, SecretInfo.from_api)

    def history(self, scope: str | Scope, key: str) -> History:
        """A secret's kept versions, newest first (numbers, times, authors; never a value) and its deletedAt."""
        return _parse(self._call("GET", _path(_scope(scope), key) + "/versions"), history_from_dict)

    def set(self, scope: str | Scope, key: str, value: str | SecretValue,
            meta: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None) -> SecretInfo:
        """Create the secret or write a new version of it; `meta` replaces its tags (None keeps them).

        Sent with an Idempotency-Key (a fresh one unless `idempotency_key` names one), so the client's own retry
        after a lost answer writes once: the server replays the first answer instead of writing a second version.
        A RemoteUnavailable after no answer may come from a write that happened: to run the job again safely, pass
        the same `idempotency_key` (one per job, kept for 24 hours by the API) to the second `set`.
        """
        if idempotency_key is not None and not (isinstance(idempotency_key, str)
                                                and IDEMPOTENCY_KEY.fullmatch(idempotency_key)):
            raise ValidationError("idempotency_key", "must be 1-255 printable ASCII characters, no spaces")
        where = _scope(scope)
        path = _path(where, key)
        secret = value if isinstance(value, SecretValue) else SecretValue(value)  # the size rule, before sending
        value = secret  # from here no local of this frame is the plain text (error trackers record frames' locals)
        body = Payload({"value": secret.reveal(), **({} if meta is None else {"meta": validate_meta(meta)})})
        try:
            answer = self._call("PUT", path, body=body,
                                headers={"Idempotency-Key": idempotency_key or secrets.token_urlsafe(24)})
        finally:
            self._cache.forget(str(where), [key])  # even after a failure: the write may have happened
        return _parse(answer, lambda doc: SecretInfo.from_api(doc, created=answer.status == 201))

    def list(self, scope: str | Scope, prefix: str = "") -> Iterator[SecretInfo]:
        """Every secret of the scope (starting with `prefix`), masked, in key-name order, fetched page by page
        as the iteration goes."""
        return self._pages(_scope(scope), validate_prefix(prefix))

    # -- internals ---------------------------------------------------------------------------------------------

    def _pages(self, where: Scope, prefix: str) -> Iterator[SecretInfo]:
        cursor: str | None = None
        seen: set[str] = set()  # a listing's every cursor: one handed back again would list forever
        while True:
            answer = self._call("GET", "/secrets", query={**_owner(where), "prefix": prefix or None,
                                                          "withMeta": "true", "limit": PAGE, "cursor": cursor})
            items, given = _parse(answer, lambda doc: ([SecretInfo.from_api(i) for i in doc["items"]],
                                                       doc["nextCursor"]))
            yield from items
            cursor = advancing(cursor, given or None, seen)
            if cursor is None:
                return

    def _reveal_keys(self, where: Scope, names: builtins.list[str]) -> dict[str, SecretValue]:
        found: dict[str, SecretValue] = {}
        wanted = []
        for name in names:
            cached = self._cache.get(str(where), name)
            if cached is None:
                wanted.append(name)
            else:
                found[name] = cached
        for start in range(0, len(wanted), MAX_BATCH):
            ticket = self._cache.ticket()
            batch = self._batch(where, {"keys": wanted[start:start + MAX_BATCH]})
            self._cache.put(str(where), batch, ticket)
            found.update(batch)
        return dict(sorted(found.items()))

    def _reveal_prefix(self, where: Scope, prefix: str) -> dict[str, SecretValue]:
        cached = self._cache.get_prefix(str(where), prefix)
        if cached is not None:
            return cached
        ticket = self._cache.ticket()
        try:
            values = self._batch(where, {"prefix": prefix} if prefix else {})
        except ValidationError as exc:
            if exc.field != "prefix":  # the prefix passed the local rule: the API says it matches over 1,000
                raise
            values = self._reveal_keys(where, [info.key for info in self._pages(where, prefix)])
        self._cache.put(str(where), values, ticket, prefix=prefix)
        return values

    def _batch(self, where: Scope, selector: dict[str, Any]) -> dict[str, SecretValue]:
        answer = self._call("POST", "/secrets:reveal", body=Payload({**_owner(where), **selector}))
        return _parse(answer, lambda doc: {i["keyName"]: SecretValue(i["value"]) for i in doc["items"]})

    def _call(self, method: str, path: str, *, body: Payload | None = None, query: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None) -> Answer:
        """One API call with retries; a 401 renews an exchanged token once and tries again. Every call the client
        makes is safe to repeat: reads, reveals, and PUTs with an Idempotency-Key."""
        renewed = False
        while True:
            token = self._auth.bearer()
            attempt = functools.partial(self._http.send, method, path, token=token, body=body, query=query,
                                        headers=headers)
            try:
                return self._retrier.run(attempt, what=f"{method} /v1{path}", idempotent=True)
            except HttpFailure as failure:
                error, status = failure.error, failure.status
            # Outside the `except`: an error of the renewal must not drag the transport's failure along with it.
            if isinstance(error, (Unauthenticated, PermissionDenied)) and not isinstance(error, StepUpRequired):
                self._cache.clear()  # a revoked or narrowed token: no more values from before, even if renewing fails
            if status == 401 and not renewed and not isinstance(error, StepUpRequired) and self._auth.rejected(token):
                renewed = True
                continue
            raise error from None

    def _exchange(self, jwt: SecretValue) -> tuple[SecretValue, int | None]:
        """RFC 8693 at POST /v1/auth/token. Not retried after no answer: the API may have used the JWT up."""
        form = Payload({"grant_type": EXCHANGE_GRANT, "subject_token": jwt.reveal(),
                        "subject_token_type": JWT_TOKEN_TYPE})
        try:
            answer = self._retrier.run(lambda: self._http.send("POST", "/auth/token", form=form),
                                       what="POST /v1/auth/token", idempotent=False)
        except HttpFailure as failure:
            raise failure.error from None
        doc = answer.body if isinstance(answer.body, dict) else {}
        token, expires = doc.get("access_token"), doc.get("expires_in")
        if not isinstance(token, str) or not TOKEN_TEXT.fullmatch(token):
            raise RemoteUnavailable(f"the API at {self._http.base} answered the token exchange without an API token")
        lifetime = expires if isinstance(expires, int) and not isinstance(expires, bool) and expires > 0 else None
        return SecretValue(token), lifetime


def _parse(answer: Answer, read: Callable[[Any], T]) -> T:
    """`read(body)`, or RemoteUnavailable when the body is not what the API answers (another server, a proxy)."""
    try:
        return read(answer.body)
    except (KeyError, TypeError, ValueError, AttributeError, ValidationError):  # e.g. a value that is not text
        raise RemoteUnavailable(f"the API answered {answer.status} with an unexpected body") from None
