"""State that must not cross a fork: a forked child has only the thread that forked, so a lock another thread held,
or a leader it waited for, would never be released there."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Protocol


class ResetsAfterFork(Protocol):
    def _after_fork(self) -> None: ...


def reset_in_forked_children(owner: ResetsAfterFork) -> None:
    """Call `owner._after_fork()` in every child this process forks from now on, while `owner` lives (the hook
    lives as long as the process; it holds the owner weakly)."""
    os.register_at_fork(after_in_child=_reset(weakref.ref(owner)))


def _reset(owner: weakref.ref[ResetsAfterFork]) -> Callable[[], None]:
    def reset() -> None:
        alive = owner()
        if alive is not None:
            alive._after_fork()
    return reset
