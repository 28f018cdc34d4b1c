"""A requests transport adapter that bounds what one KMS answer may cost: its size, and the time its body takes.

requests' timeout bounds each wait on the socket, not the answer: a server (or a proxy in front of it) that sent a
byte every few seconds held a KMS call, and the API request or command waiting on it, for as long as it liked, and
one that sent gigabytes had them all read into memory. Used by the Vault (hvac) and Azure (azure-core) clients;
boto3 and the gRPC client of Cloud KMS do not go through requests (gRPC has its own deadline and message limit).

What is not bounded here: a server that drips its status line and headers (requests hands the answer over only
after them), which each socket wait's timeout still bounds line by line.
"""

from __future__ import annotations

from typing import Any

import requests
import requests.adapters

from sprongus.adapters.bounded_read import read_at_most

MAX_ANSWER = 4 * 2**20  # bytes: a KMS answer is a few KiB; a batch of 50 wrapped keys about 10 KiB


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """An answer's body read whole within `deadline` seconds of its headers (ReadTimeout otherwise; each wait on the
    socket is bounded by the request's timeout, so a stall after the last byte in time is caught by that) and at
    most `max_answer` bytes long (ContentDecodingError otherwise): both a KMS outage to the adapters' error
    tables."""

    def __init__(self, deadline: float, max_answer: int = MAX_ANSWER, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deadline = deadline
        self._max_answer = max_answer

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        if stream:  # the caller reads it (neither KMS client asks for that)
            return response
        try:  # the bound runs from the headers: the server's own time is bounded by the wait for them
            body = self._read(response)
        except BaseException:
            response.close()  # the rest of the answer is not read: the connection is not reused
            raise
        response._content = body  # what requests itself does when it reads the body (Response.content)
        response._content_consumed = True
        response.raw.release_conn()
        return response

    def _read(self, response: requests.Response) -> bytes:
        """The body, with urllib3's errors as requests' own (as Response.iter_content turns them), which the KMS
        clients' error tables know: a cut-off or stalled answer stays an outage, not an unexpected error."""
        from urllib3 import exceptions as u3

        try:
            body = read_at_most(lambda n: response.raw.read1(n, decode_content=True), self._max_answer,
                                self._deadline)
        except TimeoutError:
            raise requests.exceptions.ReadTimeout(f"the answer took longer than {self._deadline:g} s",
                                                  response=response) from None
        except u3.ProtocolError as exc:  # cut off mid-answer (IncompleteRead), connection reset
            raise requests.exceptions.ChunkedEncodingError(exc) from None
        except u3.DecodeError as exc:  # a body that is not the gzip or deflate it says
            raise requests.exceptions.ContentDecodingError(exc) from None
        except u3.ReadTimeoutError as exc:  # one wait on the socket longer than the timeout
            raise requests.exceptions.ConnectionError(exc) from None
        except u3.SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None
        if body is None:
            raise requests.exceptions.ContentDecodingError(
                f"the answer is longer than {self._max_answer // 2**20} MiB", response=response)
        return body
