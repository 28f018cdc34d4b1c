"""RateLimiter on the `limits` library: moving windows in memory (dev/test) or in a shared store (Redis)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from sprongus.domain.errors import ConfigError, StorageError
from sprongus.ports.rate_limit import RateLimitDecision


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
        try:
            self._storage = storage_from_string(storage_uri)
        except Exception as exc:
            raise ConfigError(f"SPRONGUS_RATE_LIMIT_STORAGE: cannot use {storage_uri.split('@')[-1]}: "
                              f"{type(exc).__name__}") from None
        self._limiter = MovingWindowRateLimiter(self._storage)

    def hit(self, policy: str, identity: str) -> RateLimitDecision:
        item = self._items[policy]
        try:
            allowed = self._limiter.hit(item, policy, identity)
            stats = self._limiter.get_window_stats(item, policy, identity)
        except Exception as exc:  # Redis down: fail closed, as "unavailable" (503), never as "allowed"
            raise StorageError(f"rate-limit storage unavailable: {type(exc).__name__}") from exc
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return RateLimitDecision(allowed, policy, item.amount, item.get_expiry(), stats.remaining, reset_after)


class UnlimitedRateLimiter:
    """For the local vault owner only (CLI local mode): every hit is allowed."""

    def hit(self, policy: str, identity: str) -> RateLimitDecision:
        return RateLimitDecision(True, policy, 0, 0, 0, 0)
