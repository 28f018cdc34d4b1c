"""HTTP connections whose answers arrive within their timeout as a whole, not within it per socket wait.

http.client reads an answer's status line, headers, `100 Continue` interim answers, chunk-size lines and trailers
a line at a time, each socket wait bounded by the connection's timeout only: a server sending a byte every few
seconds (or interim answers, or trailer lines, without end) held a client for as long as it liked, and a body
reader that checks the time between reads (bounded_read.read_at_most) never got control back to check it. Here
every read of the answer waits at most until a deadline: the status line and headers within the timeout of the
request, then the body, its framing included, within the timeout of the headers.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from typing import Any


class _ReadsBefore(io.RawIOBase):
    """The socket's bytes, each read waiting at most until `deadline` (TimeoutError after it)."""

    def __init__(self, sock: socket.socket, within: float | None) -> None:
        super().__init__()
        self._sock = sock
        # A SocketIO of its own, as http.client's file is: it keeps the socket open until the answer is closed,
        # after urllib has closed the connection's own reference.
        self._io = sock.makefile("rb", buffering=0)
        self._within = within
        self._deadline: float | None = None

    def restart(self) -> None:
        self._deadline = None if self._within is None else time.monotonic() + self._within

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the answer took longer than {self._within:g} s")
            self._sock.settimeout(left)
        return self._io.readinto(buffer)

    def close(self) -> None:
        self._io.close()
        super().close()


class BoundedResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        own = self.fp
        self._reads = _ReadsBefore(sock, sock.gettimeout())
        self.fp = io.BufferedReader(self._reads)
        own.close()

    def begin(self) -> None:
        self._reads.restart()  # the status line, interim answers and headers
        super().begin()
        self._reads.restart()  # the body with its chunk framing and trailers


class BoundedHTTPConnection(http.client.HTTPConnection):
    response_class = BoundedResponse


class BoundedHTTPSConnection(http.client.HTTPSConnection):
    response_class = BoundedResponse
