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
    """Mask the live plaintexts of the current request or command (and `extra`) inside `text`.

    Outside a value scope (the local CLI: one user, one command) that is every value alive in the process.
    """
    return _masked(text, SecretValue.live_plaintexts() + (extra or []))


def scrub_answer(text: str) -> str:
    """Mask, in text sent back to an API caller, only the values that caller's own request brought or opened.

    Never another request's: whether a mask appears must not depend on what other tenants do at the same time.
    """
    return _masked(text, SecretValue.scope_plaintexts())


def scrub_log(text: str) -> str:
    """Mask every value alive in the process: a log line goes to the operator, so masking more tells no caller
    anything, and a value in flight elsewhere must not reach the log either."""
    return _masked(text, SecretValue.process_plaintexts())


def _masked(text: str, candidates: list[str]) -> str:
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
        record.msg = scrub_log(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_log(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_log(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach the filter to every handler of `logger` (root by default); handlers see records after filters."""
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    target.addFilter(flt)
    for handler in target.handlers:
        handler.addFilter(flt)
    return flt
