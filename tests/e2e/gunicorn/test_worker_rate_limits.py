"""In-memory rate limits under several gunicorn workers (real gunicorn processes): refused outside dev, a warning
in dev.

Each worker keeps its own in-memory counters, so N workers let N times every limit through (the reveal limit
included) with nothing to show for it. The master refuses before any worker starts, with one line naming the
setting; dev, where a laptop runs `gunicorn` with the defaults, gets one warning.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Machine
from tests.e2e.gunicorn.conftest import free_port, gunicorn_conf, start_gunicorn, stop

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn")

REFUSAL = ("Error: SPRONGUS_RATE_LIMIT_STORAGE: in-memory rate limits are refused with more than one gunicorn "
           "worker outside SPRONGUS_ENV=dev (each worker would count alone); use redis:// or one worker")
WARNING = "SPRONGUS_RATE_LIMIT_STORAGE: in-memory rate limits with 2 workers"


def env_key() -> str:
    return "k1:" + base64.b64encode(os.urandom(32)).decode()


def prod_on_sqlite(machine: Machine) -> dict[str, str]:
    """Production settings that pass every other check: SQLite and local keys are what prod still accepts."""
    return {"SPRONGUS_ENV": "prod", "SPRONGUS_DATABASE_URL": f"sqlite:///{machine.home / 'vault.db'}",
            "SPRONGUS_KEY_PROVIDER": "file", "SPRONGUS_KEY_FILE": str(machine.home / "master.key"),
            "SPRONGUS_ALLOW_LOCAL_KEYS": "1", "SPRONGUS_RATE_LIMIT_STORAGE": "memory://"}


def refused_start(machine: Machine, settings: dict[str, str], *options: str) -> str:
    """Start gunicorn and expect it to exit 1 on its own; returns its output."""
    env = machine.env(extra={"SPRONGUS_BIND": f"127.0.0.1:{free_port()}", **settings})
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", gunicorn_conf(), *options, "sprongus.entrypoints.api:create_app()"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=machine.root,
        start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail("gunicorn started and served instead of refusing")
    text = output.decode(errors="replace")
    assert proc.returncode == 1, text
    return text


@pytest.mark.parametrize("profile", ["prod", "test"])
def test_several_workers_with_in_memory_limits_are_refused_outside_dev(machine: Machine, profile: str) -> None:
    settings = prod_on_sqlite(machine) if profile == "prod" else {"SPRONGUS_ENV": "test"}

    text = refused_start(machine, {**settings, "WEB_CONCURRENCY": "2"})

    # Besides gunicorn's own "Starting gunicorn" line: the refusal, one line.
    assert [line for line in text.splitlines() if line.strip() and " INFO gunicorn.error: " not in line] == [REFUSAL]
    assert "Traceback" not in text
    assert "Booting worker" not in text  # refused by the master, before any worker
    assert not (machine.home / "vault.db").exists()


def test_the_worker_count_from_the_command_line_counts(machine: Machine) -> None:
    # WEB_CONCURRENCY says one worker, `--workers 3` overrides it: the check sees gunicorn's final count.
    text = refused_start(machine, {"SPRONGUS_ENV": "test", "WEB_CONCURRENCY": "1"}, "--workers", "3")

    assert REFUSAL in text.splitlines()


def test_one_worker_with_in_memory_limits_starts(machine: Machine, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    proc, url = start_gunicorn(machine, {"SPRONGUS_ENV": "test"}, log, workers=1)
    try:
        assert requests.get(f"{url}/v1/openapi.json", timeout=5).status_code == 200
    finally:
        stop(proc)
    assert "SPRONGUS_RATE_LIMIT_STORAGE" not in log.read_text()


def test_dev_with_several_workers_warns_once_and_serves(machine: Machine, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    proc, url = start_gunicorn(machine, {"SPRONGUS_ENV": "dev", "SPRONGUS_MASTER_KEYS": env_key()}, log, workers=2)
    try:
        assert requests.get(f"{url}/v1/openapi.json", timeout=5).status_code == 200
    finally:
        stop(proc)
    text = log.read_text()
    warnings = [line for line in text.splitlines() if WARNING in line]
    assert len(warnings) == 1, text
    assert " WARNING " in warnings[0] and "redis://" in warnings[0]
    assert "Traceback" not in text
