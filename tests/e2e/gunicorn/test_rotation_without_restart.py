"""`keys rotate-master` with the CLI while gunicorn serves the same vault: no restart, no 500.

Release 1's workers kept the key list they started with: reveals of rotated secrets answered 500 ("no configured
key provider holds master key file:v2") and new secrets were still wrapped with the old key. Now a worker that
meets an unknown key id re-reads its keys once, and new writes move to the newest key within 5 s.

Its own small stack (the embedded SQLite vault and the key file, two workers), so the operator's CLI and the
server share the key provider the way a single-host deployment does.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Machine
from tests.e2e.gunicorn.conftest import start_gunicorn, stop
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain reachable")

SCOPE = "project:p1"
API_KEY = "/v1/secrets/project/p1/"
REFRESH = 5.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Machine, str, str, Path]]:
    machine = Machine(tmp_path)
    machine.ok("secrets", "set", SCOPE, "before", "-", input=f"{CANARY}\n")
    token = machine.ok("tokens", "create", "--subject", "svc", "--project", "p1", "--scope", "secrets:read",
                       "--scope", "secrets:write", "--scope", "secrets:reveal", "--ttl", "1h").stdout.strip()
    log = tmp_path / "gunicorn.log"
    proc, url = start_gunicorn(machine, {"SPRONGUS_ENV": "dev", "SPRONGUS_KEY_PROVIDER": "file",
                                         "SPRONGUS_RATE_LIMIT_REVEAL": "1000/minute"}, log)
    try:
        yield machine, url, token, log
    finally:
        stop(proc)
    output = log.read_text(errors="replace")
    assert CANARY not in output and token not in output


def key_of(home: Path, key: str) -> str:
    with sqlite3.connect(home / "vault.db") as conn:
        (master_key_id,) = conn.execute("SELECT master_key_id FROM secret_kv WHERE key_name = ?", (key,)).fetchone()
    return str(master_key_id)


def test_a_running_server_reveals_rotated_secrets_and_writes_on_the_new_key(
        served: tuple[Machine, str, str, Path]) -> None:
    machine, url, token, log = served
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def reveal(key: str) -> requests.Response:
        return session.post(f"{url}{API_KEY}{key}:reveal", timeout=10)

    for _ in range(4):  # both workers have loaded their keys and served a reveal
        assert reveal("before").json()["value"] == CANARY
    old_key = key_of(machine.home, "before")

    machine.ok("keys", "rotate-master")
    rotated_at = time.monotonic()
    new_key = key_of(machine.home, "before")
    assert new_key != old_key

    for _ in range(6):  # each worker meets the unknown key id, re-reads the key file once, and answers
        answer = reveal("before")
        assert answer.status_code == 200, answer.text
        assert answer.json()["value"] == CANARY

    time.sleep(max(0.0, REFRESH + 0.5 - (time.monotonic() - rotated_at)))
    for index in range(4):  # both workers, all on the newest key within 5 s of the rotation
        name = f"after.{index}"
        written = session.put(f"{url}{API_KEY}{name}", json={"value": f"{CANARY}-{index}"}, timeout=10)
        assert written.status_code == 201, written.text
        assert key_of(machine.home, name) == new_key
    assert " 500 " not in log.read_text(errors="replace")
