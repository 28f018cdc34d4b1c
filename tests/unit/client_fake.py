"""A scripted HTTP server on loopback for the client's tests: each request gets the next scripted answer for its
method and path (or the standing one), and is recorded. An answer can be a problem+json error with headers,
a delay, or DROP: the connection closed without a byte, as when a server dies mid-request."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROBLEM = "urn:sprongus:problem:"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode()))

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization")
        return value.removeprefix("Bearer ") if value else None


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # sent as it is instead of `body` as JSON
    drip: float = 0.0  # seconds between the body's bytes, sent one at a time


DROP = Reply(status=0)  # no answer at all: the connection is closed


def problem(status: int, kind: str, detail: str = "", headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"type": PROBLEM + kind, "title": kind, "status": status, "detail": detail or kind},
                 {"Content-Type": "application/problem+json", **(headers or {})})


def record(scope: str, key: str, version: int = 1) -> dict[str, Any]:
    """A masked record as the API answers it."""
    kind, _, owner = scope.partition(":")
    return {"ownerType": kind, "ownerId": owner or None, "scope": scope, "keyName": key, "value": "********",
            "masked": True, "version": version, "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-02T00:00:00Z", "lastRotatedAt": None, "meta": {"owner": "ops"}}


Answer = Reply | Callable[[Seen], Reply]


class FakeApi:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._queued: dict[tuple[str, str], deque[Answer]] = {}
        self._standing: dict[tuple[str, str], Answer] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def then(self, method: str, path: str, *answers: Answer) -> FakeApi:
        """Answers used once each, in order, before the standing one."""
        with self._lock:
            self._queued.setdefault((method, path), deque()).extend(answers)
        return self

    def always(self, method: str, path: str, answer: Answer) -> FakeApi:
        with self._lock:
            self._standing[(method, path)] = answer
        return self

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if method in (None, s.method) and path in (None, s.path)]

    def _answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            queued = self._queued.get((seen.method, seen.path))
            answer = queued.popleft() if queued else self._standing.get((seen.method, seen.path))
        if answer is None:
            return Reply(404, {"error": "no such route in the fake"})
        return answer(seen) if callable(answer) else answer

    def __enter__(self) -> FakeApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                seen = Seen(self.command, url.path, dict(urllib.parse.parse_qsl(url.query)),
                            {k.lower(): v for k, v in self.headers.items()}, body)
                reply = fake._answer(seen)
                time.sleep(reply.delay)
                if reply.status == 0:
                    self.close_connection = True
                    return
                payload = reply.raw if reply.raw is not None else \
                    b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not reply.drip:
                    self.wfile.write(payload)
                    return
                try:
                    for byte in payload:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(reply.drip)
                except OSError:  # the client hung up
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
