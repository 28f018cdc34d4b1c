"""`--remote`: the REST API named by the settings and its token (SPRONGUS_TOKEN, else a workload's JWT from
SPRONGUS_OIDC_TOKEN_FILE exchanged for one, else the OS keychain, else the file `sprongus login` writes where there
is no keychain). The SecretsApi on top, with the step-up offer, is cli/login.py's `remote_secrets_api`."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import urllib.parse
from pathlib import Path

from sprongus.domain import errors as e
from sprongus.entrypoints.config import Settings

# Where the token of --remote came from, in the order they are tried.
FROM_ENV, FROM_WORKLOAD, FROM_LOGIN = "SPRONGUS_TOKEN", "SPRONGUS_OIDC_TOKEN_FILE", "login"


def checked_api_url(url: str | None) -> str:
    if not url or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise e.ConfigError("SPRONGUS_API_URL: set it to the API's http(s) base URL (e.g. http://127.0.0.1:8000)")
    return url


def remote_token(settings: Settings, url: str) -> tuple[str, str]:
    """(token, where it came from). A workload's JWT is exchanged for a token of this process only: never stored."""
    if settings.api_token:
        return settings.api_token, FROM_ENV
    if settings.oidc_token_file is not None:
        from sprongus.adapters.oidc_device import JWT_TOKEN_TYPE, exchange, read_jwt_file

        return exchange(url, read_jwt_file(settings.oidc_token_file), JWT_TOKEN_TYPE).token.reveal(), FROM_WORKLOAD
    from sprongus.adapters.keychain import stored_api_token

    token = stored_api_token(url) or stored_file_token(settings.api_token_file, url)
    if not token:
        raise e.PermissionDenied("no API token: set SPRONGUS_TOKEN or run `sprongus login` (`--oidc` to sign in "
                                 "with your identity provider)")
    return token, FROM_LOGIN


# `sprongus login` without an OS keychain: {"format": ..., "tokens": {API base URL: token}}, mode 0600.
TOKEN_FILE_FORMAT = "sprongus.api-tokens.v1"  # noqa: S105 - a format name, not a token


def _api(url: str) -> str:
    """With or without /v1: one API, one token (the keychain item is named the same way)."""
    return url.rstrip("/").removesuffix("/v1").rstrip("/")


def stored_file_token(path: Path, api_url: str) -> str | None:
    """The token `sprongus login` kept in the file for this API; the file is refused, like the key file, when
    other users may read it."""
    tokens = _read_tokens(path)
    token = tokens.get(_api(api_url)) if tokens is not None else None
    return token if isinstance(token, str) and token else None


def store_file_token(path: Path, api_url: str, token: str) -> None:
    """Add or replace this API's token: written to a fresh 0600 file, then renamed over the old one."""
    tokens = _read_tokens(path) or {}
    tokens[_api(api_url)] = token
    _write_tokens(path, tokens)


def forget_file_token(path: Path, api_url: str) -> bool:
    """`sprongus logout`: drop this API's token from the file; False when it held none."""
    tokens = _read_tokens(path)
    if not tokens or tokens.pop(_api(api_url), None) is None:
        return False
    _write_tokens(path, tokens)
    return True


def _write_tokens(path: Path, tokens: dict[str, object]) -> None:
    import tempfile  # its imports cost start-up time: only `sprongus login` needs it

    text = json.dumps({"format": TOKEN_FILE_FORMAT, "tokens": tokens}, indent=2) + "\n"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        raise e.ConfigError(f"SPRONGUS_HOME: cannot write the API token file {path} "
                            f"({exc.strerror or type(exc).__name__})") from None


def _read_tokens(path: Path) -> dict[str, object] | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise e.KeyProviderError(f"API token file {path} cannot be read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise e.KeyProviderError(f"API token file {path} is accessible by other users "
                                     f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}")
        raw = handle.read()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != TOKEN_FILE_FORMAT or not isinstance(doc.get("tokens"), dict):
        raise e.KeyProviderError(f"API token file {path} is not a sprongus token file; remove it and run "
                                 "`sprongus login` again")
    tokens: dict[str, object] = doc["tokens"]
    return tokens
