"""A TCP proxy on loopback for outage drills: put it between the server and Postgres or Redis, then kill it (every
connection dropped, nothing listening: a crash or a lost network) or freeze it (connections accepted, not a byte
forwarded: a stopped VM, a hung server), and start a new one on the same port to end the outage.

Threads, one listener and two pumps per connection; every loop wakes at least every 0.1 s to see kill and freeze.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from types import TracebackType

TICK = 0.1


class TcpProxy:
    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a new proxy rebinds a killed one's
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self._listener.settimeout(TICK)
        self.port: int = self._listener.getsockname()[1]
        self._killed = threading.Event()
        self._frozen = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._pairs = 0
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def connections(self) -> int:
        """Client connections being forwarded now."""
        with self._lock:
            return self._pairs

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.connections != count:
            assert time.monotonic() < deadline, f"{self.connections} connections through the proxy, not {count}"
            time.sleep(0.01)

    def freeze(self) -> None:
        """Accept new connections and keep every connection open, but forward nothing either way."""
        self._frozen.set()

    def kill(self) -> None:
        """Stop listening and drop every connection (the peers see the end of the stream), like a crash."""
        self._killed.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _drop(sock)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()

    def _accept(self) -> None:
        while not self._killed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._frozen.is_set():
                self._keep(client)  # accepted, never read
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _drop(client)
                continue
            with self._lock:
                if self._killed.is_set():
                    _drop(client)
                    _drop(upstream)
                    return
                self._sockets.update((client, upstream))
                self._pairs += 1
            done = threading.Event()
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink, done), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _pump(self, source: socket.socket, sink: socket.socket, done: threading.Event) -> None:
        try:
            while not self._killed.is_set() and not done.is_set():
                if self._frozen.is_set():
                    time.sleep(TICK)
                    continue
                readable, _, _ = select.select([source], [], [], TICK)
                if not readable or self._frozen.is_set():  # frozen while waiting: the bytes stay unread
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            # Either side ending ends both, as a real connection through a dead hop would.
            with self._lock:
                if not done.is_set():
                    done.set()
                    self._pairs -= 1
                self._sockets.discard(source)
                self._sockets.discard(sink)
            _drop(source)
            _drop(sink)


def _drop(sock: socket.socket) -> None:
    # shutdown first: it sends the FIN now, even while another thread still waits on the socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
