"""The operating system's CSPRNG behind the RandomSource port."""

from __future__ import annotations

import os


class OsRandomSource:
    def bytes(self, n: int) -> bytes:
        return os.urandom(n)
