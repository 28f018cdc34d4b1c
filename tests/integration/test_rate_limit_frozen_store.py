"""A frozen rate-limit store (Redis that accepts connections and answers nothing) fails closed in bounded time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sprongus.adapters.rate_limit_limits import REDIS_TIMEOUT, LimitsRateLimiter
from sprongus.domain.errors import StorageUnavailable
from tests.integration.silent_listener import silent_listener


@pytest.fixture
def frozen_redis() -> Iterator[str]:
    """A Redis URL whose server accepts every connection and never sends a byte."""
    with silent_listener() as port:
        yield f"redis://127.0.0.1:{port}"


def test_a_frozen_store_is_unavailable_within_the_timeout_never_allowed(frozen_redis: str) -> None:
    limiter = LimitsRateLimiter({"write": "10/minute"}, frozen_redis)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="rate-limit storage unavailable"):
        limiter.hit("write", "alice")
    assert time.monotonic() - started < 4 * REDIS_TIMEOUT  # a few socket timeouts at most, not forever
    assert not limiter.available()
