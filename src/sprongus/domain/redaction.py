"""Redaction helpers used by every layer: mask values, scrub structures, scrub log records."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sprongus.domain.values import MASK, SecretValue

# Plaintexts shorter than this are not searched for in log text: masking every "a" in a log line would destroy
# the log and a value that short is not a credential worth the name.
MIN_SCRUB_LENGTH = 4
SENSITIVE_KEYS = frozenset({"value", "plaintext", "password", "passphrase", "token", "authorization", "secret"})


def scrub_text(text: str, extra: list[str] | None = None) -> str:
    """Replace every live plaintext (and the given extra strings) inside `text` with the mask."""
    candidates = SecretValue.live_plaintexts() + (extra or [])
    for plain in sorted(candidates, key=len, reverse=True):
        if len(plain) >= MIN_SCRUB_LENGTH and plain in text:
            text = text.replace(plain, MASK)
    return text


def scrub(obj: Any) -> Any:
    """A copy of a dict/list/DTO tree with SecretValues, sensitive keys and live plaintexts masked."""
    if isinstance(obj, SecretValue):
        return MASK
    if isinstance(obj, Mapping):
        return {k: (MASK if str(k).lower() in SENSITIVE_KEYS and v is not None else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(scrub(item) for item in obj)
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj


class RedactingFilter(logging.Filter):
    """Formats each record early and scrubs live plaintexts from its message and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        record.msg = scrub_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach the filter to every handler of `logger` (root by default); handlers see records after filters."""
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    target.addFilter(flt)
    for handler in target.handlers:
        handler.addFilter(flt)
    return flt
