"""Bounded concurrency for master-key calls in bulk work: a slow KMS must not make a rotation serial."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BoundedPool:
    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = concurrency

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`fn` over items with at most `concurrency` calls in flight; results in order, first error raised.

        Only crypto runs here: database work stays on the calling thread, inside its own transactions.
        """
        if self.concurrency <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)),
                                thread_name_prefix="sprongus-kms") as pool:
            return list(pool.map(fn, items))
