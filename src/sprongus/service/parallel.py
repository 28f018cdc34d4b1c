"""Bounded concurrency for master-key calls in bulk work: a slow KMS must not make a rotation serial."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
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
        from concurrent.futures import ThreadPoolExecutor  # here: most commands never need a pool (~1.5 ms to load)

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)),
                                thread_name_prefix="sprongus-kms") as pool:
            # Each call runs in a copy of the caller's context, so a value it opens joins the caller's value scope
            # (what that request's answers are scrubbed against), not a thread's leftover scope or none.
            futures = [pool.submit(contextvars.copy_context().run, fn, item) for item in items]
            return [future.result() for future in futures]
