"""Rate limits as the use cases apply them: per principal, or per client address for anonymous callers (redeems,
token exchanges)."""

from __future__ import annotations

from sprongus.domain.errors import RateLimited, RateLimitStoreUnavailable
from sprongus.domain.principal import Principal, TokenKind
from sprongus.ports import RateLimiter


class Throttle:
    def __init__(self, limiter: RateLimiter, ipv6_prefix: int = 64) -> None:
        self._limiter = limiter
        self._ipv6_prefix = ipv6_prefix

    def principal(self, principal: Principal, policy: str) -> None:
        """The local vault owner is never limited; everyone else counts against `policy` (single reveals by a
        workload token against `reveal_workload`: a service reads what it needs at start-up)."""
        if principal.rate_limited:
            if policy == "reveal" and principal.kind is TokenKind.WORKLOAD:
                policy = "reveal_workload"
            self._hit(policy, principal.subject)

    def address(self, policy: str, client_address: str | None) -> None:
        self._hit(policy, self._by_address(client_address))

    def within(self, policy: str, client_address: str | None) -> bool:
        """Whether the address is still within `policy`, this hit counted. A rate-limit store that is down counts
        as past it: the callers decide only whether to audit a refusal (never whether to answer it), and with the
        count gone an audited refusal would again be one row per request anyone sends."""
        try:
            decision = self._limiter.hit(policy, self._by_address(client_address))
        except RateLimitStoreUnavailable:
            return False
        return decision.allowed

    def _by_address(self, client_address: str | None) -> str:
        return f"addr:{address_bucket(client_address, self._ipv6_prefix)}"

    def _hit(self, policy: str, who: str) -> None:
        decision = self._limiter.hit(policy, who)
        if not decision.allowed:
            raise RateLimited(policy, limit=decision.limit, window_seconds=decision.window_seconds,
                              retry_after=max(1, decision.reset_after))


def address_bucket(client_address: str | None, ipv6_prefix: int = 64) -> str:
    """What a per-address limit counts by. An IPv6 address counts as its network of `ipv6_prefix` bits, a /64 by
    default: one host, or one customer's network, is commonly given a whole /64, so counted one by one each of its
    2**64 addresses had a budget of its own (where many workloads share a /64, as pods on one IPv6 subnet, a
    longer prefix gives each its own). An IPv4 address mapped into IPv6 (a dual-stack listener's view of an IPv4
    peer) counts as that IPv4 address. Anything that is not an address (none; text a trusted proxy passed on)
    counts as given."""
    if not client_address:
        return "unknown"
    import ipaddress  # only the API's anonymous endpoints count by address: not on a CLI command's start-up

    try:
        address = ipaddress.ip_address(client_address)
    except ValueError:
        return client_address
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), ipv6_prefix), strict=False))
    return str(address)
