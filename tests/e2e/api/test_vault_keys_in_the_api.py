"""The API over a vault whose HMAC keys the vault keeps (no SPRONGUS_HMAC_KEYS): start-up needs neither the
database nor the KMS, and an Idempotency-Key retry matches on any worker, whenever that worker started."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

from sprongus.adapters.memory import ManualClock
from sprongus.entrypoints.api.app import create_app
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from tests.e2e.api.conftest import KEY, ROOMY_LIMITS, ApiClient, container_with_clock
from tests.harness import CANARY

MASTER = {"SPRONGUS_MASTER_KEYS": "mk1:" + base64.b64encode(bytes(range(32))).decode()}


def worker(home: Path) -> ApiClient:
    """One gunicorn worker's app on the shared SQLite vault: its own container, as a worker process has."""
    settings = Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home), **MASTER, **ROOMY_LIMITS})
    return ApiClient(container_with_clock(settings, ManualClock()), ManualClock(), home)


def test_an_idempotent_retry_replays_on_a_worker_whose_hmac_key_is_newer(tmp_path: Path) -> None:
    first_worker = worker(tmp_path)
    assert first_worker.put("/v1/secrets/project/p1/first", "v").status_code == 201  # makes and signs with h1
    operator = worker(tmp_path)
    assert operator.container.vault_keys().rotate_hmac().startswith("db:h2-")  # `keys rotate-hmac`
    later_worker = worker(tmp_path)  # started after the rotation: it fingerprints with h2
    retry = {"Idempotency-Key": "once-1"}
    first = first_worker.put(KEY, CANARY, headers=retry)
    again = later_worker.put(KEY, CANARY, headers=retry)  # the client's retry reached the other worker
    assert (first.status_code, again.status_code) == (201, 201), again.get_data(as_text=True)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = later_worker.put(KEY, "another value", headers=retry)
    assert other.status_code == 422  # a different request under the same key is still refused
    for api in (first_worker, operator, later_worker):
        api.close()


def test_the_app_starts_while_the_database_is_down_when_the_vault_keeps_the_hmac_keys() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket is closed
    container = build_container(Settings.from_mapping({
        "SPRONGUS_ENV": "dev", "SPRONGUS_DATABASE_URL": f"postgresql://app@127.0.0.1:{port}/sprongus",
        "SPRONGUS_DB_CONNECT_TIMEOUT": "2", **MASTER}))
    app = create_app(container)
    ready = app.test_client().get("/v1/health/ready")
    assert ready.status_code == 503 and "database" in ready.get_json()["detail"]
    assert app.test_client().get("/v1/health/live").status_code == 200
