"""A requests transport adapter that bounds what one KMS answer may cost: its size, and the time to its last byte.

requests' timeout bounds each wait on the socket, not the answer: a server (or a proxy in front of it) that sent a
byte every few seconds held a KMS call, and the API request or command waiting on it, for as long as it liked, and
one that sent gigabytes had them all read into memory. Used by the Vault (hvac) and Azure (azure-core) clients;
boto3 and the gRPC client of Cloud KMS do not go through requests (gRPC has its own deadline and message limit).

What is not bounded here: a server that drips its status line and headers (requests hands the answer over only
after them), which each socket wait's timeout still bounds line by line.
"""

from __future__ import annotations

import time
from typing import Any

import requests
import requests.adapters

MAX_ANSWER = 4 * 2**20  # bytes: a KMS answer is a few KiB; a batch of 50 wrapped keys about 10 KiB
_CHUNK = 64 * 1024


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """An answer read whole within `deadline` seconds of the request (ReadTimeout otherwise) and at most
    `max_answer` bytes long (ContentDecodingError otherwise): both a KMS outage to the adapters' error tables."""

    def __init__(self, deadline: float, max_answer: int = MAX_ANSWER, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deadline = deadline
        self._max_answer = max_answer

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        started = time.monotonic()
        response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        if stream:  # the caller reads it (neither KMS client asks for that)
            return response
        body = bytearray()
        try:
            # read1: what has arrived, at most _CHUNK (read() would wait for all of it, one socket wait at a time)
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                body += chunk
                if len(body) > self._max_answer:
                    raise requests.exceptions.ContentDecodingError(
                        f"the answer is longer than {self._max_answer // 2**20} MiB", response=response)
                if time.monotonic() - started > self._deadline:
                    raise requests.exceptions.ReadTimeout(
                        f"the answer took longer than {self._deadline:g} s", response=response)
        except BaseException:
            response.close()  # the rest of the answer is not read: the connection is not reused
            raise
        response._content = bytes(body)  # what requests itself does when it reads the body (Response.content)
        response._content_consumed = True
        response.raw.release_conn()
        return response
