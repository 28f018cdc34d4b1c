"""The verified-token cache: a bearer looked up once is trusted for `ttl` seconds at most, a revocation through the
same store is honoured at once, one made elsewhere within the bound, and expiry is never cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sprongus.adapters.memory_tokens import InMemoryApiTokenStore
from sprongus.adapters.token_cache import CachingApiTokenStore
from sprongus.domain.api_token import ApiToken
from sprongus.domain.errors import Unauthenticated
from sprongus.service.tokens import TokenService

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Ticks:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


class CountingStore(InMemoryApiTokenStore):
    def __init__(self) -> None:
        super().__init__()
        self.finds = 0

    def find(self, token_hash: str) -> ApiToken | None:
        self.finds += 1
        return super().find(token_hash)


class Clock:
    def __init__(self) -> None:
        self.value = NOW

    def now(self) -> datetime:
        return self.value


class Random:
    def __init__(self) -> None:
        self.n = 0

    def bytes(self, n: int) -> bytes:
        self.n += 1
        return bytes([self.n % 256]) * n


def setup(ttl: float = 1.0, entries: int = 100) -> tuple[TokenService, CountingStore, CachingApiTokenStore, Ticks,
                                                             Clock]:
    inner, ticks, clock = CountingStore(), Ticks(), Clock()
    cached = CachingApiTokenStore(inner, ttl, entries, now=ticks)
    return TokenService(cached, clock, Random()), inner, cached, ticks, clock


def issue(tokens: TokenService, subject: str = "svc", ttl: int = 3600) -> tuple[str, ApiToken]:
    secret, record = tokens.create(subject, ["secrets:read"], [], ttl)
    return secret.reveal(), record


def test_a_token_is_looked_up_once_within_the_bound_and_again_after_it() -> None:
    tokens, inner, _, ticks, _ = setup(ttl=1.0)
    bearer, _ = issue(tokens)
    for _ in range(5):
        tokens.authenticate(bearer)
    assert inner.finds == 1
    ticks.value += 1.0
    tokens.authenticate(bearer)
    assert inner.finds == 2


def test_a_revocation_elsewhere_is_honoured_within_the_bound() -> None:
    tokens, inner, _, ticks, clock = setup(ttl=1.0)
    bearer, record = issue(tokens)
    tokens.authenticate(bearer)
    inner.revoke(record.id, clock.now())  # another process: this one's store never heard of it
    ticks.value += 0.5
    tokens.authenticate(bearer)  # inside the bound: still the cached answer (the stated trade-off)
    ticks.value += 0.5
    with pytest.raises(Unauthenticated):
        tokens.authenticate(bearer)
    with pytest.raises(Unauthenticated):  # and it stays refused: a revoked record is not kept
        tokens.authenticate(bearer)
    assert inner.finds == 3


@pytest.mark.parametrize("how", ["by id", "by hash"])
def test_a_revocation_through_this_process_is_honoured_at_once(how: str) -> None:
    tokens, _, cached, _, clock = setup(ttl=60.0)
    bearer, record = issue(tokens)
    tokens.authenticate(bearer)
    if how == "by id":
        tokens.revoke(record.id)
    else:
        cached.revoke_by_hash(record.token_hash, clock.now())
    with pytest.raises(Unauthenticated):
        tokens.authenticate(bearer)


def test_expiry_is_checked_on_every_request_even_when_cached() -> None:
    tokens, _, _, _, clock = setup(ttl=60.0)
    bearer, _ = issue(tokens, ttl=10)
    tokens.authenticate(bearer)
    clock.value += timedelta(seconds=11)
    with pytest.raises(Unauthenticated):
        tokens.authenticate(bearer)


def test_unknown_bearers_are_never_kept_and_the_cache_is_bounded() -> None:
    tokens, inner, cached, _, _ = setup(ttl=60.0, entries=3)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            tokens.authenticate("spr_not-a-real-token")
    assert inner.finds == 3  # guessing fills nothing
    bearers = [issue(tokens, f"svc{n}")[0] for n in range(5)]
    for bearer in bearers:
        tokens.authenticate(bearer)
    assert len(cached._kept) == 3
    finds = inner.finds
    tokens.authenticate(bearers[0])  # the oldest went first
    tokens.authenticate(bearers[-1])
    assert inner.finds == finds + 1


def test_a_lookup_racing_a_revocation_in_this_process_keeps_nothing() -> None:
    """A lookup that read the record before a logout must not keep it: the logout is honoured at once here."""
    tokens, inner, cached, _, clock = setup(ttl=60.0)
    bearer, _ = issue(tokens)
    real_find = inner.find

    def find_then_logout(token_hash: str) -> ApiToken | None:
        found = real_find(token_hash)  # read before the revocation commits...
        cached.revoke_by_hash(token_hash, clock.now())  # ...which lands before the reader keeps it
        return found

    inner.find = find_then_logout  # type: ignore[method-assign]
    tokens.authenticate(bearer)  # this request began before the logout: it may pass
    inner.find = real_find  # type: ignore[method-assign]
    with pytest.raises(Unauthenticated):
        tokens.authenticate(bearer)
