"""Tokens and URLs as operators configure them, checked by name before a parser, a driver or an HTTP library sees
them: those quote what they cannot read in their errors, and that part may be the password or the token.

Each refusal names the setting and the rule and repeats none of the value.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sprongus.domain.errors import ConfigError


def token_text(setting: str, raw: str) -> str:
    """A bearer or Vault token without the whitespace around it (a file's or a Kubernetes secret's trailing newline,
    which HTTP libraries refused by quoting the whole header); whitespace, a control character or a character
    beyond ASCII inside it is refused (http.client refused those too, repeating the whole header in its error)."""
    token = raw.strip()
    if not token.isascii() or any(char.isspace() or not char.isprintable() for char in token):
        raise ConfigError(f"{setting}: a token has no spaces, control characters or non-ASCII characters inside it")
    return token


def _netloc(setting: str, url: str) -> str:
    try:
        return urlsplit(url).netloc
    except ValueError:  # an unbalanced `[` (IPv6): its message repeats nothing, but this one names the setting
        raise ConfigError(f"{setting}: not a URL") from None


def without_userinfo(setting: str, url: str) -> str:
    """A URL that takes no credentials (the API's, a KMS endpoint, an identity provider's issuer): a user name or
    password in it would be printed with the URL in errors, and the issuer is published at /v1/auth/config."""
    _netloc(setting, url)  # a URL that does not parse is refused by name, without repeating it
    if "@" in url:  # anywhere: a raw `/`, `?` or `#` in a password ends the host part before its `@`
        raise ConfigError(f"{setting}: a user name or password does not belong in this URL")
    try:
        _ = urlsplit(url).port
    except ValueError:  # the part after a `:`, which a raw `/` in a password would make of its first half
        raise ConfigError(f"{setting}: the port is not a number") from None
    return url


def one_userinfo(setting: str, url: str) -> str:
    """A database URL whose password holds a raw `@`: the driver took the rest of the password for the host and
    printed it in every "cannot resolve host" error. (A raw `/` is refused where libpq's own reading of the URL
    shows it: adapters/peewee/postgres.py.)"""
    if _netloc(setting, url).count("@") > 1:
        raise ConfigError(f"{setting}: write an `@` in the user name or password as %40")
    return url
