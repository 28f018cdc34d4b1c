"""Signing in to the API: where `sprongus login` keeps a token, the OIDC device sign-in (`login --oidc`), and the
remote SecretsApi that offers a fresh sign-in when a reveal needs one (RFC 9470 step-up) and retries once."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from sprongus.adapters.http_client import ApiClient, HttpSecretsApi
from sprongus.domain import errors as e
from sprongus.entrypoints.cli.output import info, plain
from sprongus.entrypoints.cli.remote import (
    FROM_ENV,
    FROM_LOGIN,
    checked_api_url,
    forget_file_token,
    remote_token,
    store_file_token,
    stored_file_token,
)
from sprongus.entrypoints.config import Settings

if TYPE_CHECKING:
    from sprongus.adapters.oidc_device import Exchanged

STEP_UP_HINT = "sign in again with `sprongus login --oidc --step-up`"
KEYCHAIN = "the OS keychain"  # keep_token's answer when the token went there, not to the file


def keep_token(settings: Settings, url: str, token: str) -> str:
    """Keep the token for --remote: in the OS keychain, else in the 0600 token file (with a warning on stderr).
    Returns where it went, for the confirmation line."""
    from sprongus.adapters.keychain import api_token_item

    item = api_token_item(url, 10.0)
    if item is not None:
        item.set(token)
        return KEYCHAIN
    # A headless machine has no keychain: the file is what the key file is to the master key (0600, refused
    # when others can read it), so --remote works there too without SPRONGUS_TOKEN in every shell.
    path = settings.api_token_file
    store_file_token(path, url, token)
    click.echo(f"warning: no OS keychain is available; the token is kept in {path} (mode 0600)", err=True)
    return str(path)


def stored_tokens(settings: Settings, url: str) -> list[str]:
    """The tokens `sprongus login` kept for this API: the keychain's and the file's (either may be absent)."""
    from sprongus.adapters.keychain import stored_api_token

    found = [stored_api_token(url), stored_file_token(settings.api_token_file, url)]
    return [token for token in dict.fromkeys(found) if token]


def forget_tokens(settings: Settings, url: str) -> None:
    """Remove this API's token from the keychain and from the token file."""
    from sprongus.adapters.keychain import SERVICE, call_with_timeout, real_backend

    backend = real_backend(10.0)
    if backend is not None:
        # The item `api_token_item` names: one per API, with or without /v1.
        name = "api-token:" + url.rstrip("/").removesuffix("/v1").rstrip("/")

        def delete() -> None:
            import keyring.errors

            with contextlib.suppress(keyring.errors.PasswordDeleteError):  # nothing kept there
                backend.delete_password(SERVICE, name)

        call_with_timeout(delete, 10.0, "delete")
    forget_file_token(settings.api_token_file, url)


def oidc_sign_in(settings: Settings, url: str, *, step_up: bool) -> Exchanged:
    """The device sign-in at the issuer the API names (GET /v1/auth/config), and the exchange of its ID token for
    an API token. The code to enter goes to stderr; the device code, the JWT and the token are never shown."""
    from sprongus.adapters import oidc_device as oidc

    try:
        config = ApiClient(url, None).call("GET", "/auth/config")
    except e.NotFound:
        raise e.ConfigError(f"the API at {url} has no OIDC sign-in configured (SPRONGUS_OIDC_ISSUER on the "
                            "server); sign in with a token instead: `sprongus login`") from None
    issuer, client_id = (config or {}).get("issuer"), (config or {}).get("clientId")
    if not isinstance(issuer, str):
        raise e.RemoteUnavailable(f"the API at {url} answered /v1/auth/config without an issuer")
    if not isinstance(client_id, str) or not client_id:
        raise e.ConfigError(f"the API at {url} names no OIDC client id for the CLI (SPRONGUS_OIDC_CLIENT_ID on the "
                            "server)")
    allow_http = settings.env != "prod"
    endpoints = oidc.discover(issuer, allow_http)
    code = oidc.start(endpoints, client_id, step_up=step_up, allow_http=allow_http)
    # The identity provider's text, from the provider the API names: shown, never obeyed by the terminal.
    click.echo(f"To sign in, open {plain(code.verification_uri)} and enter the code {plain(code.user_code)}", err=True)
    if code.verification_uri_complete:
        click.echo(f"  (or open {plain(code.verification_uri_complete)}, which fills in the code)", err=True)
    info("Waiting for the sign-in to be approved...")
    id_token = oidc.poll(endpoints, client_id, code)
    return oidc.exchange(url, id_token, oidc.ID_TOKEN_TYPE)


def whoami(url: str, token: str) -> dict[str, Any]:
    answer = ApiClient(url, token).call("GET", "/auth/whoami")
    if not isinstance(answer, dict):
        raise e.RemoteUnavailable(f"the API at {url} answered /v1/auth/whoami without a JSON object")
    return answer


def signed_in(url: str, token: str, expires_in: int | None = None) -> dict[str, Any]:
    """The subject and expiry of a new token, from the API's own view of it (None where it did not say)."""
    try:
        me = whoami(url, token)
    except e.SprongusError:  # the token is kept: only the confirmation's details are missing
        me = {}
    expires = me.get("expiresAt")
    if expires is None and expires_in is not None:
        expires = (datetime.now(UTC) + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"subject": me.get("subject"), "expiresAt": expires}


def oidc_login(settings: Settings, url: str, *, step_up: bool) -> tuple[str, dict[str, Any]]:
    """`login --oidc` and the step-up offer: sign in, keep the token, say who is signed in. Returns the token and
    the summary `login --json` prints (where the token is kept, subject, expiry: never the token itself)."""
    exchanged = oidc_sign_in(settings, url, step_up=step_up)
    token = exchanged.token.reveal()
    where = keep_token(settings, url, token)
    who = signed_in(url, token, exchanged.expires_in)
    info(f"logged in as {plain(who['subject'] or 'the identity provider user')} "
         f"(expires {plain(who['expiresAt'] or 'unknown')})")
    return token, {"apiUrl": url, "storedIn": "keychain" if where == KEYCHAIN else "file", **who}


def sign_in_and_keep(settings: Settings, url: str, *, step_up: bool) -> str:
    """The step-up offer's sign-in: as `login --oidc`; returns the new token."""
    return oidc_login(settings, url, step_up=step_up)[0]


def on_terminal() -> bool:
    """A person can answer: the question goes to stderr, the answer comes from stdin."""
    return sys.stdin.isatty() and sys.stderr.isatty()


class StepUpClient(ApiClient):
    """The API client of --remote. A call answered with the step-up challenge (only reveals and mints are, and
    before any effect, so a retry is safe) offers a fresh sign-in on a terminal, keeps the new token and retries
    once; without a terminal it fails with the step-up exit code and the hint."""

    def __init__(self, settings: Settings, url: str, token: str, source: str) -> None:
        super().__init__(url, token)
        self._settings, self._url, self._source = settings, url, source
        self._stepped_up = False

    def send(self, method: str, path: str, body: Any = None,
             query: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            return super().send(method, path, body, query)
        except e.StepUpRequired as exc:
            if self._stepped_up or not self._offer(exc.max_age):
                raise self._hinted(exc) from None
        try:
            return super().send(method, path, body, query)
        except e.StepUpRequired as exc:
            raise self._hinted(exc) from None

    def _offer(self, max_age: int) -> bool:
        if self._source != FROM_LOGIN or not on_terminal():
            return False
        if not click.confirm(f"Your sign-in is older than {max_age} s. Sign in again now?", default=False,
                             err=True):
            return False
        self._stepped_up = True
        self.use_token(sign_in_and_keep(self._settings, self._url, step_up=True))
        return True

    def _hinted(self, exc: e.StepUpRequired) -> e.StepUpRequired:
        hinted = e.StepUpRequired(exc.max_age)
        if self._stepped_up:
            hinted.message += "; the identity provider's new sign-in was not recent enough either"
        elif self._source in (FROM_ENV, FROM_LOGIN):
            hinted.message = (f"a reveal needs a sign-in less than {exc.max_age} s old; "
                              + ("unset SPRONGUS_TOKEN, then " if self._source == FROM_ENV else "") + STEP_UP_HINT)
        return hinted


def remote_client(settings: Settings, api_url: str | None = None) -> tuple[StepUpClient, str]:
    """The client of --remote and `auth status` (with the token's source): SPRONGUS_TOKEN, else the workload's
    SPRONGUS_OIDC_TOKEN_FILE exchanged, else the token `sprongus login` kept."""
    url = checked_api_url(api_url or settings.api_url)
    token, source = remote_token(settings, url)
    return StepUpClient(settings, url, token, source), source


def remote_secrets_api(settings: Settings) -> HttpSecretsApi:
    return HttpSecretsApi(remote_client(settings)[0])
