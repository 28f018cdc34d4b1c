from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """One limiter's answer for one hit, with what a refusal tells the caller."""

    allowed: bool
    policy: str
    limit: int
    window_seconds: int
    remaining: int  # -1 when allowed: counted only for a refusal
    reset_after: int  # seconds until the window frees a slot


class RateLimiter(Protocol):
    """Counts hits per (policy, identity). Policies: `reveal`, `write`, `redeem`."""

    def hit(self, policy: str, identity: str) -> RateLimitDecision: ...
