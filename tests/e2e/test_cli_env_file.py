"""No `.env` is read implicitly; SPRONGUS_ENV_FILE names one (real `sprongus` processes, a real HTTP listener).

A cloned repository can ship a `.env` that turns on remote mode against its own server with its own token: the
user's next `secrets set` would send the value there while the screen said "created". Here a recording HTTP
server plays that server.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, one_error_line
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain")

PLANTED_TOKEN = "spr_" + "A" * 43


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, str, bytes]] = []  # method, path, Authorization, body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        assert isinstance(server, Recorder)
        server.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        payload = json.dumps({"type": "about:blank", "title": "Not found", "status": 404}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def plant_dot_env(directory: Path, recorder: Recorder, name: str = ".env") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"SPRONGUS_REMOTE=1\nSPRONGUS_API_URL={recorder.url}\nSPRONGUS_TOKEN={PLANTED_TOKEN}\n")
    return path


def test_a_dot_env_in_the_working_directory_is_ignored(machine: Machine, recorder: Recorder) -> None:
    plant_dot_env(machine.root, recorder)  # Machine runs every command in machine.root

    created = machine.run("secrets", "set", SCOPE, "db.password", "-", input=CANARY)
    revealed = machine.run("secrets", "get", SCOPE, "db.password", "--reveal", "--yes")

    assert created.returncode == 0, created.stderr
    assert created.stdout == f"created {SCOPE} db.password (version 1)\n"
    assert revealed.stdout == CANARY + "\n"  # it went to the local vault ...
    assert recorder.seen == []  # ... and the planted server heard nothing


def test_sprongus_env_file_names_the_file_and_the_environment_wins(machine: Machine, recorder: Recorder,
                                                                   tmp_path: Path) -> None:
    env_file = plant_dot_env(tmp_path / "elsewhere", recorder, "sprongus.env")  # not in the working directory

    sent = machine.run("secrets", "set", SCOPE, "db.password", "-", input="not the canary",
                       env={"SPRONGUS_ENV_FILE": str(env_file)})
    overridden = machine.run("secrets", "set", SCOPE, "db.password", "-", input=CANARY,
                             env={"SPRONGUS_ENV_FILE": str(env_file), "SPRONGUS_REMOTE": "0"})

    assert sent.returncode != 0  # the recorder answers 404 to everything
    assert [(method, path.split("?")[0], auth) for method, path, auth, _ in recorder.seen] == [
        ("PUT", "/v1/secrets/project/p1/db.password", f"Bearer {PLANTED_TOKEN}")]
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.stdout == f"created {SCOPE} db.password (version 1)\n"
    assert len(recorder.seen) == 1
    assert all(CANARY.encode() not in body for *_, body in recorder.seen)


@pytest.mark.parametrize("name", ["missing.env", "a-directory"])
def test_an_unreadable_env_file_is_a_bad_setting(machine: Machine, tmp_path: Path, name: str) -> None:
    (tmp_path / "a-directory").mkdir()

    proc = machine.run("secrets", "list", SCOPE, env={"SPRONGUS_ENV_FILE": str(tmp_path / name)})

    assert proc.returncode == 2
    line = one_error_line(proc.stderr, naming="SPRONGUS_ENV_FILE")
    assert name not in line  # the rule, never the setting's value
