"""`--remote` never follows a redirect: the bearer token (and a reveal's POST turned GET) would go wherever the
redirect points. The refusal names the target; the other server never sees a request. The API URL may be given
with or without a trailing `/` or `/v1`."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import pytest

from tests.e2e.conftest import Machine, one_error_line

TOKEN = "spr_redirect-test-token-never-forwarded"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str | None]]] = []
    redirect_to: str | None = None
    code = 307

    def _answer(self) -> None:
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.redirect_to is not None:
            self.send_response(self.code)
            self.send_header("Location", self.redirect_to + self.path + "?leak=query")
            self.end_headers()
            return
        body = b'{"items": [], "nextCursor": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def _server(redirect_to: str | None = None, code: int = 307) -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    handler = type("Handler", (_Recorder,), {"seen": [], "redirect_to": redirect_to, "code": code})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("args", [["secrets", "list", "project:p1"],
                                  ["secrets", "get", "project:p1", "db.password", "--reveal", "--yes"]])
def test_a_redirect_is_refused_and_the_token_goes_nowhere(machine: Machine, code: int, args: list[str]) -> None:
    with _server() as (elsewhere, elsewhere_seen), _server(elsewhere, code) as (api, api_seen):
        proc = machine.run(*args, "--remote", env={"SPRONGUS_API_URL": api, "SPRONGUS_TOKEN": TOKEN})
    assert proc.returncode == 2  # a setting to fix (SPRONGUS_API_URL), not an outage to wait out
    line = one_error_line(proc.stderr, naming="redirect")
    assert elsewhere in line and "leak=query" not in line
    assert len(api_seen) == 1 and elsewhere_seen == []  # asked once, never followed
    assert TOKEN not in proc.stdout + proc.stderr


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_the_api_url_may_end_with_a_slash_or_v1(machine: Machine, suffix: str) -> None:
    with _server() as (api, seen):
        proc = machine.run("secrets", "list", "project:p1", "--remote",
                           env={"SPRONGUS_API_URL": api + suffix, "SPRONGUS_TOKEN": TOKEN})
    assert proc.returncode == 0, proc.stderr
    assert [path.split("?")[0] for _, path, _ in seen] == ["/v1/secrets"]
    assert seen[0][2] == f"Bearer {TOKEN}"
