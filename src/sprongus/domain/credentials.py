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
    if "@" in _netloc(setting, url):
        raise ConfigError(f"{setting}: a user name or password does not belong in this URL")
    return url


def one_userinfo(setting: str, url: str) -> str:
    """A database URL whose password holds a raw `@`: the driver took the rest of the password for the host and
    printed it in every "cannot resolve host" error. A raw `/` ends the host part early: libpq took the user name
    for the host and the password's first part for the port, and quoted it in "invalid integer value ... for
    connection option "port"" on every request's log line."""
    netloc = _netloc(setting, url)
    if netloc.count("@") > 1:
        raise ConfigError(f"{setting}: write an `@` in the user name or password as %40")
    path = url.split("://", 1)[-1][len(netloc):]
    if "@" not in netloc and "@" in path.split("?", 1)[0]:
        raise ConfigError(f"{setting}: write a `/` in the user name or password as %2F")
    hosts = netloc.rpartition("@")[2].split(",")  # libpq takes several: host1:5432,host2:5433
    ports = [host.rpartition("]")[2].partition(":")[2] for host in hosts]  # after an IPv6 literal's brackets
    if any(port and not (port.isascii() and port.isdigit()) for port in ports):
        raise ConfigError(f"{setting}: the port is not a number (a `/`, `?` or `#` in the password is written "
                          "%2F, %3F or %23)")
    return url
