"""A listening socket per gunicorn worker (SO_REUSEPORT): new connections are spread over the workers by the
kernel, and a port that another program holds stops the server at start, as a shared socket did."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Machine
from tests.e2e.gunicorn.conftest import start_gunicorn, stop
from tests.e2e.gunicorn.test_worker_rate_limits import env_key, refused_start

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn, SO_REUSEPORT")


def test_a_port_another_program_holds_stops_the_server_at_start(machine: Machine) -> None:
    with socket.socket() as taken:  # a plain listener, without SO_REUSEPORT: not a sibling worker
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = refused_start(machine, {"SPRONGUS_ENV": "test", "WEB_CONCURRENCY": "1",
                                       "SPRONGUS_BIND": f"127.0.0.1:{port}"})

    lines = [line for line in text.splitlines() if line.strip() and " INFO gunicorn.error: " not in line]
    assert lines == [f"Error: SPRONGUS_BIND: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "Booting worker" not in text  # the master stops before any worker (which would be started again and again)


def test_new_connections_reach_every_worker(machine: Machine, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    proc, url = start_gunicorn(machine, {"SPRONGUS_ENV": "dev", "SPRONGUS_MASTER_KEYS": env_key()}, log, workers=2)
    try:
        for _ in range(40):  # 40 new connections: all on one worker by chance is 1 in 2**39
            answer = requests.get(f"{url}/v1/secrets/system/-/k", timeout=10, headers={"Connection": "close"})
            assert answer.status_code == 401
    finally:
        stop(proc)
    text = log.read_text()
    pids = {line.split("[", 1)[1].split("]", 1)[0] for line in text.splitlines() if "sprongus.api.access" in line}
    assert len(pids) == 2, text[-2000:]
    port = url.rsplit(":", 1)[1]
    assert f"Listening at: http://127.0.0.1:{port} (a socket per worker, SO_REUSEPORT)" in text
