"""Reading an HTTP answer's body with a bound on its size and on the time it takes to arrive.

A socket's timeout bounds each wait only: a server sending a byte every few seconds held a client for as long as it
liked, and one sending gigabytes had them read into memory. Shared by the API's clients (adapters/http_client.py,
the SDK) and the KMS clients' transport adapter (entrypoints/kms_clients/bounded.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

_CHUNK = 64 * 2**10


def read_at_most(read1: Callable[[int], bytes], limit: int, within: float) -> bytes | None:
    """The body read through `read1` (what has arrived, up to n bytes; b"" at its end: read() would wait for all of
    it, one socket wait at a time), or None past `limit` bytes; TimeoutError (an OSError: the peer is as good as
    unreachable) past `within` seconds."""
    deadline = time.monotonic() + within
    body = bytearray()
    while chunk := read1(min(_CHUNK, limit + 1 - len(body))):
        body += chunk
        if len(body) > limit:
            return None
        if time.monotonic() > deadline:
            raise TimeoutError(f"the answer took longer than {within:g} s")
    return bytes(body)
