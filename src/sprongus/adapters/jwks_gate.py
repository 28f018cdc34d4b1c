"""The identity providers' documents fetched under a deadline the caller cannot overrun, one fetch per URL at a time,
and a failure remembered for a while.

A token exchange fetches the trusted issuer's keys when its cache is empty or stale, before anything proves the JWT
came from that issuer: a stranger's unsigned JWT naming the issuer is enough. The socket timeout bounds each read,
not the fetch, and only the body's reads had a deadline: an issuer answering its headers a byte every few seconds
(compromised, or a stalled proxy) held each exchange's thread without end, and a few exchanges held every thread of a
gunicorn worker, every endpoint with them. An issuer that was down cost each exchange a fresh fetch and its wait.

Here the fetch runs on a small pool of its own: the request waits for it at most FETCH_DEADLINE, then answers 503.
Requests for a URL being fetched wait for that fetch instead of starting another, and a URL whose fetch failed or
overran answers 503 at once for FAILURE_SECONDS. A fetch that never ends keeps one pool thread, not the request's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from sprongus.domain.errors import Unavailable

FETCH_DEADLINE = 6.0  # seconds a request waits for a document: the fetch's own 5 s socket timeout, and a margin
FAILURE_SECONDS = 10.0  # a failed URL answers 503 without a fetch for this long (and recovers this late)
WORKERS = 4  # fetches at once per process: of different URLs (one per URL at a time)

Fetch = Callable[[str], bytes]


class FetchGate:
    def __init__(self, fetch: Fetch, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._inflight: dict[str, Future[bytes]] = {}
        self._failed: dict[str, tuple[float, str]] = {}  # URL -> (until, the Unavailable's message)

    def __call__(self, url: str) -> bytes:
        with self._lock:
            failed = self._failed.get(url)
            if failed is not None and failed[0] > self._monotonic():
                raise Unavailable(failed[1])
            future = self._inflight.get(url)
            if future is None:
                future = self._inflight[url] = self._executor().submit(self._run, url)
        try:
            return future.result(timeout=FETCH_DEADLINE)
        except FutureTimeout:
            message = "identity provider did not answer in time"
            self._remember(url, message)
            raise Unavailable(message) from None

    def _run(self, url: str) -> bytes:
        try:
            return self._fetch(url)
        except Unavailable as exc:
            self._remember(url, str(exc))
            raise
        except Exception as exc:  # a fetch must fail as an outage, never as the request's unexpected error
            message = f"identity provider unreachable: {type(exc).__name__}"
            self._remember(url, message)
            raise Unavailable(message) from None
        finally:
            with self._lock:
                self._inflight.pop(url, None)

    def _remember(self, url: str, message: str) -> None:
        with self._lock:
            if len(self._failed) >= 1000:  # URLs come from trusts and their discovery documents: few
                self._failed.clear()
            self._failed[url] = (self._monotonic() + FAILURE_SECONDS, message)

    def _executor(self) -> ThreadPoolExecutor:
        """Made at the first fetch of this process: a pool made before a fork has no threads in the child."""
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sprongus-jwks")
            self._pool_pid = os.getpid()
            self._inflight.clear()
        return self._pool
