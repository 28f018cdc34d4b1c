"""A frozen rate-limit store (Redis that accepts connections and answers nothing) fails closed in bounded time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sprongus.adapters.rate_limit_limits import REDIS_TIMEOUT, LimitsRateLimiter
from sprongus.domain.errors import StorageUnavailable


@pytest.fixture
def frozen_redis() -> Iterator[str]:
    """A listener that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_a_frozen_store_is_unavailable_within_the_timeout_never_allowed(frozen_redis: str) -> None:
    limiter = LimitsRateLimiter({"write": "10/minute"}, frozen_redis)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="rate-limit storage unavailable"):
        limiter.hit("write", "alice")
    assert time.monotonic() - started < 4 * REDIS_TIMEOUT  # a few socket timeouts at most, not forever
    assert not limiter.available()
