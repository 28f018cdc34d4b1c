"""Rate limits as the use cases apply them: per principal, or per client address for anonymous redeems."""

from __future__ import annotations

from sprongus.domain.errors import RateLimited
from sprongus.domain.principal import Principal, TokenKind
from sprongus.ports import RateLimiter


class Throttle:
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def principal(self, principal: Principal, policy: str) -> None:
        """The local vault owner is never limited; everyone else counts against `policy` (single reveals by a
        workload token against `reveal_workload`: a service reads what it needs at start-up)."""
        if principal.rate_limited:
            if policy == "reveal" and principal.kind is TokenKind.WORKLOAD:
                policy = "reveal_workload"
            self._hit(policy, principal.subject)

    def address(self, policy: str, client_address: str | None) -> None:
        self._hit(policy, f"addr:{client_address or 'unknown'}")

    def _hit(self, policy: str, who: str) -> None:
        decision = self._limiter.hit(policy, who)
        if not decision.allowed:
            raise RateLimited(policy, limit=decision.limit, window_seconds=decision.window_seconds,
                              retry_after=max(1, decision.reset_after))
