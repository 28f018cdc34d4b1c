"""When a failed request is tried again, and after how long.

429 and 503 are the server saying "not now": retried after its Retry-After, or after a doubling back-off when it
names none. A request that got no answer at all may have been carried out, so it is retried only when doing it
twice does no harm: reads, reveals, and writes that carry an Idempotency-Key (the server replays the first answer).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sprongus.client.transport import HttpFailure

T = TypeVar("T")
log = logging.getLogger("sprongus.client")

BACKOFF = 0.5  # seconds before the first retry when the server names no delay; doubled for each retry after it
JITTER = 0.25  # up to a quarter more: the pods of one deploy, refused together, must not come back in step
MAX_WAIT = 30.0  # seconds: the longest one wait between attempts may be
RETRIED_STATUSES = (429, 503)
IN_PROGRESS = 409  # an Idempotency-Key whose first request the server is still running


@dataclass
class Retrier:
    retries: int
    max_wait: float = MAX_WAIT
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default=random.random)

    def run(self, attempt: Callable[[], T], *, what: str, idempotent: bool) -> T:
        """`attempt()`, again while the rules allow; the last HttpFailure propagates."""
        tries, unanswered = 0, False
        while True:
            try:
                return attempt()
            except HttpFailure as failure:
                wait = self.wait(failure, tries, idempotent=idempotent, unanswered=unanswered)
                if wait is None:
                    raise
                unanswered = unanswered or failure.status is None
                tries += 1
                status = "no answer" if failure.status is None else f"HTTP {failure.status}"
                log.info("%s: %s (%s); retry %d of %d in %.1f s", what, status, failure.error, tries, self.retries,
                         wait)
                self.sleep(wait)

    def wait(self, failure: HttpFailure, tries: int, *, idempotent: bool, unanswered: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if tries >= self.retries:
            return None
        if failure.status in RETRIED_STATUSES:
            named = failure.retry_after
        elif idempotent and (failure.status is None or (failure.status == IN_PROGRESS and unanswered)):
            # No answer: the request may still be running on the server, so a keyed write's retry can meet its own
            # first attempt in flight (409); that one is waited out like an outage.
            named = None
        else:
            return None
        if named is not None and named > self.max_wait:
            # The server asks for longer than a call may wait (a limit per minute, per hour): waiting less would
            # only be refused again, so the caller hears it now, with the delay in RateLimited.retry_after.
            return None
        delay = named if named is not None else min(BACKOFF * 2**tries, self.max_wait)
        return min(delay * (1 + JITTER * self.random()), self.max_wait) if delay else 0.0
