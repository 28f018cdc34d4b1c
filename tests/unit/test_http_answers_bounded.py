"""An answer arrives within the client's timeout as a whole: its headers within it of the request, its body (chunk
framing and trailers included) within it of the headers. Found by an attack review: http.client reads a chunk-size
line, trailers and `100 Continue` answers a line at a time, each socket wait bounded by the timeout only, so a
server dripping one byte per wait, or sending lines without end, held the SDK, the remote CLI and the CLI's token
exchange for as long as it liked (the SDK with timeout=1: 8 s, until the server stopped)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

from sprongus.adapters import http_client, oidc_device
from sprongus.client import Client
from sprongus.domain.errors import RemoteUnavailable, SprongusError
from sprongus.domain.values import SecretValue

TOKEN = "spr_" + "k" * 43
TIMEOUT = 1.0
HOSTILE_FOR = 6.0  # seconds the server keeps going: far past the timeout
CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def _drip(conn: socket.socket, head: bytes, piece: bytes, pause: float) -> None:
    conn.sendall(head)
    until = time.monotonic() + HOSTILE_FOR
    while time.monotonic() < until:
        conn.sendall(piece)
        time.sleep(pause)


HOSTILE: dict[str, Callable[[socket.socket], None]] = {
    # a byte of the chunk-size line (a chunk extension) every 0.3 s: each wait well within the timeout
    "chunk-size line": lambda conn: _drip(conn, CHUNKED + b"2\r\n{}\r\n0", b";", 0.3),
    "endless trailers": lambda conn: _drip(conn, CHUNKED + b"2\r\n{}\r\n0\r\n", b"X-Trailer: a\r\n" * 50, 0.01),
    "endless 100 Continue": lambda conn: _drip(conn, b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 50, 0.01),
    "headers dripped": lambda conn: _drip(conn, b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a", 0.3),
    "body dripped": lambda conn: _drip(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b" ", 0.3),
}


@contextmanager
def hostile_server(behave: Callable[[socket.socket], None]) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            with suppress(OSError):  # the client gave up and closed: what is wanted
                behave(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def _timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        call()
    except SprongusError as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_the_sdk_gives_up_on_a_hostile_answer_within_its_timeout(kind: str) -> None:
    with hostile_server(HOSTILE[kind]) as url:
        client = Client(url, TOKEN, timeout=TIMEOUT, retries=0)
        took, error = _timed(lambda: client.get("project:shop", "notion.api_token"))
    assert isinstance(error, RemoteUnavailable), error
    assert took < 2 * TIMEOUT + 0.5, took  # headers within the timeout, then the body within it


@pytest.mark.parametrize("kind", ["chunk-size line", "endless trailers", "endless 100 Continue"])
def test_the_remote_cli_gives_up_within_its_timeout(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "TIMEOUT", TIMEOUT)
    with hostile_server(HOSTILE[kind]) as url:
        took, error = _timed(lambda: http_client.ApiClient(url, TOKEN).send("GET", "/secrets"))
    assert isinstance(error, RemoteUnavailable), error
    assert took < 2 * TIMEOUT + 0.5, took


@pytest.mark.parametrize("kind", ["body dripped", "chunk-size line"])
def test_the_clis_token_exchange_gives_up_within_its_timeout(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oidc_device, "TIMEOUT", TIMEOUT)
    with hostile_server(HOSTILE[kind]) as url:
        took, error = _timed(lambda: oidc_device.exchange(url, SecretValue("a.b.c"), oidc_device.JWT_TOKEN_TYPE))
    assert isinstance(error, RemoteUnavailable), error
    assert took < 2 * TIMEOUT + 0.5, took


def test_a_slow_answer_within_each_bound_is_still_read() -> None:
    """Headers after 0.55 s, the body 0.55 s after them: each phase within the 1 s timeout, the whole over it."""
    def slow(conn: socket.socket) -> None:
        time.sleep(0.55)
        conn.sendall(CHUNKED)
        time.sleep(0.55)
        body = b'{"items": [], "nextCursor": null}'
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    with hostile_server(slow) as url:
        client = Client(url, TOKEN, timeout=TIMEOUT, retries=0)
        took, error = _timed(lambda: list(client.list("project:shop")))
    assert error is None and 1.0 < took < 2 * TIMEOUT + 0.5, (took, error)
