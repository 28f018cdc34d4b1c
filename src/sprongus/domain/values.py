"""SecretValue: plaintext held in memory, masked in every repr, str and format."""

from __future__ import annotations

import weakref
from contextvars import ContextVar, Token
from typing import Any, ClassVar

from sprongus.domain.errors import ValidationError

MASK = "********"
MAX_VALUE_BYTES = 65536
VALUE_RULE = f"must be UTF-8 text of at most {MAX_VALUE_BYTES} bytes"

_Registry = weakref.WeakValueDictionary[int, "SecretValue"]
# The values of the request (or command) being served. Text sent back to a caller is scrubbed against these only:
# scrubbing an answer against every value alive in the process made the mask an oracle, where a probe echoing a
# guess saw `********` exactly when the guess was another tenant's value in flight in a concurrent request.
_current_scope: ContextVar[_Registry | None] = ContextVar("sprongus_value_scope", default=None)


class SecretValue:
    """A secret in flight. Only `reveal()` gives the plaintext; everything else shows `********`.

    Live instances are tracked weakly so the logging filter can scrub their plaintext from any log line,
    even one built by accident with an f-string; each is also tracked in the value scope of the request that
    made it (`open_value_scope`), which is all that text sent back to that request is scrubbed against.
    """

    __slots__ = ("__weakref__", "_text")
    # Keyed by identity, not content: a WeakSet would keep only one of two equal values, and lose track of the
    # survivor when the first one dies.
    _live: ClassVar[weakref.WeakValueDictionary[int, SecretValue]] = weakref.WeakValueDictionary()

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or _utf8_size(text) > MAX_VALUE_BYTES:
            raise ValidationError("value", VALUE_RULE)
        self._text = text
        SecretValue._live[id(self)] = self
        scoped = _current_scope.get()
        if scoped is not None:
            scoped[id(self)] = self

    @classmethod
    def from_bytes(cls, data: bytes, field: str = "value") -> SecretValue:
        text = _utf8_decode(data)
        if text is None or _utf8_size(text) > MAX_VALUE_BYTES:
            # Raised outside any `except`: a chained Unicode error would carry the plaintext in `.object`.
            raise ValidationError(field, VALUE_RULE)
        return cls(text)

    @classmethod
    def live_plaintexts(cls) -> list[str]:
        """The plaintexts of the current value scope; outside any scope (the CLI), of the whole process."""
        scoped = _current_scope.get()
        return _texts(cls._live if scoped is None else scoped)

    @classmethod
    def scope_plaintexts(cls) -> list[str]:
        """The plaintexts of the current value scope only: none outside a scope."""
        scoped = _current_scope.get()
        return [] if scoped is None else _texts(scoped)

    @classmethod
    def process_plaintexts(cls) -> list[str]:
        """Every plaintext alive in the process: for the operator's logs, never for an answer to a caller."""
        return _texts(cls._live)

    def reveal(self) -> str:
        return self._text

    def encode(self) -> bytes:
        return self._text.encode("utf-8")

    def __len__(self) -> int:
        return len(self._text)

    def __eq__(self, other: object) -> bool:
        import hmac  # here, not at the top: hmac loads OpenSSL's hashlib, which `sprongus --help` has no use for

        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._text)  # consistent with __eq__; Python's str hash is salted per process

    def __repr__(self) -> str:
        return f"SecretValue('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> Any:
        raise TypeError("SecretValue cannot be pickled")


def open_value_scope() -> Token[_Registry | None]:
    """Start a value scope for one request or command; pass the token to `close_value_scope` at its end."""
    return _current_scope.set(weakref.WeakValueDictionary())


def close_value_scope(token: Token[_Registry | None]) -> None:
    try:
        _current_scope.reset(token)
    except ValueError:  # closed from another context than it was opened in: still never leave it open
        _current_scope.set(None)


def _texts(registry: _Registry) -> list[str]:
    return [value._text for value in list(registry.values())]


def _utf8_size(text: str) -> int:
    """Byte length in UTF-8, or past the limit for text that cannot be encoded (lone surrogates)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        pass
    return MAX_VALUE_BYTES + 1


def _utf8_decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return None
