from __future__ import annotations

from typing import Protocol


class RandomSource(Protocol):
    """Cryptographically strong random bytes: every token, id, data key, nonce and salt comes from here."""

    def bytes(self, n: int) -> bytes: ...
