"""`--remote`: the REST API named by the settings and its token (SPRONGUS_TOKEN, else a workload's JWT from
SPRONGUS_OIDC_TOKEN_FILE exchanged for one, else the OS keychain, else the file `sprongus login` writes where there
is no keychain). The SecretsApi on top, with the step-up offer, is cli/login.py's `remote_secrets_api`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
import urllib.parse
from pathlib import Path

from sprongus.adapters.private_dirs import make_private_dir
from sprongus.domain import errors as e
from sprongus.domain.credentials import without_userinfo
from sprongus.entrypoints.config import Settings

# Where the token of --remote came from, in the order they are tried.
FROM_ENV, FROM_WORKLOAD, FROM_LOGIN = "SPRONGUS_TOKEN", "SPRONGUS_OIDC_TOKEN_FILE", "login"


def checked_api_url(url: str | None) -> str:
    """SPRONGUS_API_URL or --api-url: an http(s) URL without a user name or password, which every message naming
    the API would print."""
    if not url or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise e.ConfigError("SPRONGUS_API_URL: set it to the API's http(s) base URL (e.g. http://127.0.0.1:8000)")
    return without_userinfo("SPRONGUS_API_URL (or --api-url)", url)


def remote_token(settings: Settings, url: str) -> tuple[str, str]:
    """(token, where it came from). A workload's JWT is exchanged once; its token is kept for the next command
    (workload_token below)."""
    if settings.api_token:
        return settings.api_token, FROM_ENV
    if settings.oidc_token_file is not None:
        return workload_token(settings.oidc_token_file, settings.api_token_file, url), FROM_WORKLOAD
    from sprongus.adapters.keychain import stored_api_token

    token = stored_api_token(url) or stored_file_token(settings.api_token_file, url)
    if not token:
        raise e.PermissionDenied("no API token: set SPRONGUS_TOKEN or run `sprongus login` (`--oidc` to sign in "
                                 "with your identity provider)")
    return token, FROM_LOGIN


# `sprongus login` without an OS keychain: {"format": ..., "tokens": {API base URL: token}}, mode 0600.
TOKEN_FILE_FORMAT = "sprongus.api-tokens.v1"  # noqa: S105 - a format name, not a token


def api_root(url: str) -> str:
    """With or without /v1: one API, one token (the keychain item is named the same way)."""
    return url.rstrip("/").removesuffix("/v1").rstrip("/")


def stored_file_token(path: Path, api_url: str) -> str | None:
    """The token `sprongus login` kept in the file for this API; the file is refused, like the key file, when
    other users may read it."""
    tokens = read_token_file(path)
    token = tokens.get(api_root(api_url)) if tokens is not None else None
    return token if isinstance(token, str) and token else None


def store_file_token(path: Path, api_url: str, token: str) -> None:
    """Add or replace this API's token: written to a fresh 0600 file, then renamed over the old one."""
    tokens = read_token_file(path) or {}
    tokens[api_root(api_url)] = token
    write_token_file(path, tokens)


def forget_file_token(path: Path, api_url: str) -> bool:
    """`sprongus logout`: drop this API's token from the file; False when it held none."""
    tokens = read_token_file(path)
    if not tokens or tokens.pop(api_root(api_url), None) is None:
        return False
    write_token_file(path, tokens)
    return True


def write_token_file(path: Path, tokens: dict[str, object], file_format: str = TOKEN_FILE_FORMAT) -> None:
    import tempfile  # its imports cost start-up time: only `sprongus login` needs it

    text = json.dumps({"format": file_format, "tokens": tokens}, indent=2) + "\n"
    try:
        make_private_dir(path.parent)
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


def read_token_file(path: Path, file_format: str = TOKEN_FILE_FORMAT) -> dict[str, object] | None:
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
    if not isinstance(doc, dict) or doc.get("format") != file_format or not isinstance(doc.get("tokens"), dict):
        raise e.KeyProviderError(f"API token file {path} is not a sprongus token file; remove it and run "
                                 "`sprongus login` again")
    tokens: dict[str, object] = doc["tokens"]
    return tokens


# SPRONGUS_OIDC_TOKEN_FILE: the API exchanges a JWT once (a second exchange of the same JWT is refused: a leaked
# copy is worthless), but a pod or a CI job runs `sprongus` many times before its JWT file is renewed. So the token
# an exchange gave is kept, in a 0600 file beside the `sprongus login` token file, under the hash of the API and the
# JWT, until 30 s before it expires; a renewed JWT file means a new exchange. Where the file cannot be written (a
# read-only container), each command exchanges again, which works once per JWT.
WORKLOAD_CACHE_FORMAT = "sprongus.workload-tokens.v1"
WORKLOAD_CACHE_NAME = "workload-tokens.json"
MARGIN = 30.0  # seconds: a token that expires sooner is not handed to a command that may run longer


def workload_token(jwt_file: Path, login_file: Path, url: str) -> str:
    from sprongus.adapters.oidc_device import JWT_TOKEN_TYPE, exchange, read_jwt_file

    jwt = read_jwt_file(jwt_file)
    slot = hashlib.sha256(f"{api_root(url)}\0{jwt.reveal()}".encode()).hexdigest()
    path = login_file.with_name(WORKLOAD_CACHE_NAME)
    cached = read_token_file(path, WORKLOAD_CACHE_FORMAT) or {}
    now = time.time()
    entry = cached.get(slot)
    if isinstance(entry, dict) and isinstance(entry.get("token"), str) \
            and isinstance(entry.get("expires"), (int, float)) and entry["expires"] - MARGIN > now:
        return str(entry["token"])
    exchanged = exchange(url, jwt, JWT_TOKEN_TYPE)
    token = exchanged.token.reveal()
    if exchanged.expires_in:
        kept: dict[str, object] = {k: v for k, v in cached.items()
                                   if isinstance(v, dict) and isinstance(v.get("expires"), (int, float))
                                   and v["expires"] > now}  # expired entries go
        kept[slot] = {"token": token, "expires": now + exchanged.expires_in}
        with contextlib.suppress(e.ConfigError):  # nowhere to keep it: this command still has its token
            write_token_file(path, kept, WORKLOAD_CACHE_FORMAT)
    return token
