"""The real sprongus API (the Flask app on the in-memory test profile) served over HTTP on loopback, in a thread:
what the client's Flask helper and the SDK page's examples run against. Every request is recorded (method, path)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from werkzeug.serving import WSGIRequestHandler, make_server

from sprongus.adapters.memory import ManualClock
from sprongus.entrypoints.config import Settings
from tests.e2e.api.conftest import ROOMY_LIMITS, ApiClient, container_with_clock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class ServedApi:
    def __init__(self, api: ApiClient, url: str, requests: list[tuple[str, str]]) -> None:
        self.api, self.url, self.requests = api, url, requests

    def token(self, subject: str, projects: tuple[str, ...] = ("shop",)) -> str:
        return self.api.token(subject, projects=projects)

    def seed(self, scope: str, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.api.seed(scope, key, value)

    def paths(self, method: str | None = None) -> list[str]:
        return [path for m, path in self.requests if method in (None, m)]


@contextmanager
def served_api(**settings: str) -> Iterator[ServedApi]:
    # The clock is the real time, fixed: tokens are made now, and stay recent enough to reveal.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    env = {"SPRONGUS_ENV": "test", **ROOMY_LIMITS, "SPRONGUS_RATE_LIMIT_REVEAL_BATCH": "1000/minute", **settings}
    api = ApiClient(container_with_clock(Settings.from_mapping(env), clock), clock, None)
    seen: list[tuple[str, str]] = []

    def recorded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        return api.app(environ, start_response)

    server = make_server("127.0.0.1", 0, recorded, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield ServedApi(api, f"http://127.0.0.1:{server.server_port}", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        api.close()
