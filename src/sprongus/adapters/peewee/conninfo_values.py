"""The values libpq accepts for the connection settings it checks only when it connects.

libpq reads `?sslmode=requre` in a URL without complaint and refuses it at the first connection; psycopg then
raised it as an OperationalError, which reads as a database outage (exit 8, 503, "retry later") for what is a
typo in the configuration, retried for ever. Checked here before the pool is built: a ConfigError naming the
setting and what it may be, without the value given (it could be anything pasted into the URL)."""

from __future__ import annotations

import re
import sys
from typing import Any

from sprongus.domain.errors import ConfigError

# libpq 18's words for each setting (its documentation, "Parameter Key Words").
_WORDS: dict[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "sslnegotiation": ("postgres", "direct"),
    "sslcertmode": ("disable", "allow", "require"),
}
# These two it reads in any case, and empty means "no bound".
_PROTOCOLS = ("", "tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3")
# Whole numbers as libpq reads them (strtol: a sign, decimal digits, a 32-bit int; connect_timeout is not here: the
# pool sets its own, from SPRONGUS_DB_CONNECT_TIMEOUT), and the range Linux takes for the socket options libpq sets
# with them while keepalives are on (outside it, setsockopt fails at every connection).
_NUMBER = re.compile(r"\s*[+-]?[0-9]{1,10}\s*")
_NUMBERS = {"keepalives": None, "keepalives_idle": (1, 32767), "keepalives_interval": (1, 32767),
            "keepalives_count": (1, 127), "tcp_user_timeout": None}


def check_conninfo_values(given: dict[str, Any]) -> None:
    """ConfigError for the first setting in `given` (libpq's parse of the URL) that libpq would refuse."""
    for name, words in _WORDS.items():
        value = given.get(name)
        if value is not None and str(value) not in words:
            raise ConfigError(f"SPRONGUS_DATABASE_URL: {name} must be one of {', '.join(words)}")
    for name in ("ssl_min_protocol_version", "ssl_max_protocol_version"):
        value = given.get(name)
        if value is not None and str(value).lower() not in _PROTOCOLS:
            raise ConfigError(f"SPRONGUS_DATABASE_URL: {name} must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3")
    keepalives = True
    for name, bounds in _NUMBERS.items():
        value = given.get(name)
        if value is None:
            continue
        text = str(value)
        if not (text.isascii() and _NUMBER.fullmatch(text) and -2**31 <= int(text) < 2**31):
            raise ConfigError(f"SPRONGUS_DATABASE_URL: {name} must be a whole number")
        keepalives = keepalives if name != "keepalives" else int(text) != 0
        if bounds is not None and keepalives and sys.platform.startswith("linux") \
                and not bounds[0] <= int(text) <= bounds[1]:
            raise ConfigError(f"SPRONGUS_DATABASE_URL: {name} must be from {bounds[0]} to {bounds[1]}")
