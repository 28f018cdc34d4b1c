"""A trusted issuer that answers its headers a byte at a time (compromised, or a stalled proxy) cannot hold the
exchanges' threads: a stranger's unsigned JWT naming the issuer started a fetch whose socket timeout never fired,
and a few of them held every thread of a gunicorn worker. Now a request waits at most the gate's deadline, requests
for the same URL share one fetch, and a failed URL answers 503 at once for a while."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sprongus.adapters import jwks_gate
from sprongus.adapters.jwks_pyjwt import PyJwtVerifier
from sprongus.domain.errors import Unavailable
from tests.integration.federation import real_now
from tests.oidc.issuer import OidcIssuer


@pytest.fixture
def dripping() -> Iterator[tuple[str, list[int]]]:
    """A server that answers each connection with a status line and then one header byte every 0.5 s, forever."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not stop.is_set():
                try:
                    conn.sendall(b"a")
                except OSError:
                    return
                stop.wait(0.5)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/jwks", connections
    stop.set()
    listener.close()


def test_a_dripping_issuer_holds_no_request_past_the_deadline(dripping: tuple[str, list[int]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwks_gate, "FETCH_DEADLINE", 1.5)
    url, connections = dripping
    with OidcIssuer() as issuer:
        verifier = PyJwtVerifier(real_now(), allow_http=True)
        token = issuer.mint()

        def exchange(_: int) -> float:
            started = time.monotonic()
            with pytest.raises(Unavailable):
                verifier.verify(token, issuer.url, url)
            return time.monotonic() - started

        with ThreadPoolExecutor(6) as pool:
            waits = list(pool.map(exchange, range(6)))  # six forged exchanges at once
        assert max(waits) < 1.5 + 1, waits  # each answered by the deadline, not held by the drip
        assert len(connections) == 1  # one fetch for the six: they waited for the same one
        started = time.monotonic()
        with pytest.raises(Unavailable, match="did not answer in time"):
            verifier.verify(token, issuer.url, url)  # the failure is remembered: 503 at once, no new connection
        assert time.monotonic() - started < 0.5 and len(connections) == 1
