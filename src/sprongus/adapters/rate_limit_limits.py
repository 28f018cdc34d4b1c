"""RateLimiter on the `limits` library: moving windows in memory (dev/test) or in a shared store (Redis)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sprongus.domain.errors import ConfigError, RateLimitStoreUnavailable
from sprongus.ports.rate_limit import RateLimitDecision

if TYPE_CHECKING:
    from limits.storage import Storage

REDIS_TIMEOUT = 2.0  # seconds


class LimitsRateLimiter:
    """Policies are limits strings such as `10/minute`, per policy name; identities are counted apart."""

    def __init__(self, policies: Mapping[str, str], storage_uri: str = "memory://") -> None:
        from limits import parse
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        try:
            self._items = {name: parse(text) for name, text in policies.items()}
        except ValueError as exc:
            raise ConfigError(f"rate limit: {exc}") from None
        # A frozen Redis (accepting connections, answering nothing) must cost a request a bounded wait and a 503,
        # like a dead one; redis-py waits forever by default.
        options = {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT} \
            if storage_uri.startswith(("redis://", "rediss://")) else {}
        try:
            self._storage = _in_process() if storage_uri.split("://", 1)[0] == "memory" else \
                storage_from_string(storage_uri, **options)
        except Exception as exc:
            raise ConfigError(f"SPRONGUS_RATE_LIMIT_STORAGE: cannot use {_where(storage_uri)}: "
                              f"{type(exc).__name__}") from None
        self._limiter = MovingWindowRateLimiter(self._storage)

    def hit(self, policy: str, identity: str) -> RateLimitDecision:
        item = self._items[policy]
        try:
            if self._limiter.hit(item, policy, identity):
                # Allowed: the window's state is not needed (no caller reads it), and on Redis it was a second
                # round trip on every reveal and write.
                return RateLimitDecision(True, policy, item.amount, item.get_expiry(), -1, 0)
            stats = self._limiter.get_window_stats(item, policy, identity)
        except Exception as exc:  # Redis down: fail closed, as "unavailable" (503), never as "allowed"
            raise RateLimitStoreUnavailable(f"rate-limit storage unavailable: {type(exc).__name__}") from exc
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return RateLimitDecision(False, policy, item.amount, item.get_expiry(), stats.remaining, reset_after)

    def available(self) -> bool:
        """The store answers (a Redis PING; always, in memory): the readiness check's question."""
        try:
            return bool(self._storage.check())
        except Exception:
            return False


class UnlimitedRateLimiter:
    """For the local vault owner only (CLI local mode): every hit is allowed."""

    def hit(self, policy: str, identity: str) -> RateLimitDecision:
        return RateLimitDecision(True, policy, 0, 0, 0, 0)

    def available(self) -> bool:
        return True


def _in_process() -> Storage:
    """limits' MemoryStorage starts a timer thread from the request thread every 10 ms (rate_limit_memory.py)."""
    from sprongus.adapters.rate_limit_memory import InProcessWindows

    return InProcessWindows()


def _where(uri: str) -> str:
    """The storage's scheme, host and port for an error: never its user name, password or query string (redis
    takes `?password=` too)."""
    try:
        parts = urlsplit(uri)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    except ValueError:  # an unbalanced `[` or a port that is no number: nothing of it is shown
        return "the URL given"
