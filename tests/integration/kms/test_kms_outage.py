"""A KMS outage is not tampering: with Cloud KMS down (the gRPC fake stopped, its port closed), `keys verify` and a
reveal exit 8 with one line, never 7 and "PROBLEMS FOUND"; the API answers 503 key-provider-unavailable. When the
KMS is back, the same vault verifies clean. The real google-cloud-kms client talks to the in-process fake."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprongus.adapters.memory import ManualClock
from sprongus.entrypoints.cli.state import CliState
from sprongus.entrypoints.config import Settings
from tests.e2e.api.conftest import ROOMY_LIMITS, ApiClient, container_with_clock, problem
from tests.e2e.conftest import SCOPE, Vault, one_error_line
from tests.harness import CANARY
from tests.integration.kms import vaults
from tests.integration.kms.gcp_fake import FakeCloudKms

KEY = "projects/sprongus-test/locations/global/keyRings/ring/cryptoKeys/master"
HMAC_KEYS = vaults.env_keys()["SPRONGUS_HMAC_KEYS"]


@pytest.fixture
def kms() -> Iterator[FakeCloudKms]:
    fake = FakeCloudKms()
    fake.start()
    fake.create_key(KEY)
    yield fake
    fake.stop()


def settings(port: int) -> dict[str, str]:
    # A short timeout: the client retries an unavailable KMS until it runs out, and each outage costs that long.
    return {"SPRONGUS_KEY_PROVIDER": f"gcp://{KEY}", "SPRONGUS_KMS_ENDPOINT": f"http://127.0.0.1:{port}",
            "SPRONGUS_KMS_TIMEOUT": "0.5", "SPRONGUS_HMAC_KEYS": HMAC_KEYS}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def outage(result_stdout: str, result_stderr: str) -> str:
    line = one_error_line(result_stderr, naming="Cloud KMS")
    assert "unreachable" in line and "retry later" in line
    assert "PROBLEMS FOUND" not in result_stdout + result_stderr
    assert CANARY not in result_stdout + result_stderr
    return line


def test_verify_and_reveal_during_a_kms_outage_exit_8_and_verify_resumes_when_it_is_back(
        kms: FakeCloudKms, tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = Vault(home, settings(kms.port))
    for key in ("a", "b", "c"):
        up.set(key, f"{CANARY}-{key}")
    running = up.container()  # a process that started while the KMS answered

    kms.stop()
    verify = up("keys", "verify", state=CliState(container=running))
    reveal = up("secrets", "get", SCOPE, "a", "--reveal", "--yes", state=CliState(container=running))
    down = Vault(home, settings(closed_port()))  # a process started during the outage
    started = down("keys", "verify", state=CliState(build=lambda *_: down.container()))

    assert (verify.exit_code, reveal.exit_code, started.exit_code) == (8, 8, 8)
    assert verify.stdout == reveal.stdout == started.stdout == ""
    outage(verify.stdout, verify.stderr)
    outage(reveal.stdout, reveal.stderr)
    outage(started.stdout, started.stderr)
    listed = up("secrets", "list", SCOPE, state=CliState(container=running))
    assert listed.exit_code == 0 and listed.stdout.split()[3::3] == ["a", "b", "c"]  # masked: no KMS call

    kms.start()  # back, on a new port, with the same keys
    back = Vault(home, settings(kms.port))
    assert back.ok("keys", "verify").stdout == "checked 3 secrets: ok\n"
    assert back.reveal("a") == f"{CANARY}-a".encode()


def test_the_api_answers_503_for_a_reveal_during_a_kms_outage(kms: FakeCloudKms, tmp_path: Path) -> None:
    env = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path / "home"), **ROOMY_LIMITS, **settings(kms.port)}
    clock = ManualClock()
    api = ApiClient(container_with_clock(Settings.from_mapping(env), clock), clock, tmp_path / "home")
    try:
        api.seed(SCOPE, "db.password", CANARY)
        path = "/v1/secrets/project/p1/db.password"
        assert api.reveal(path).status_code == 200

        kms.stop()
        answer = api.reveal(path)
        body = problem(answer, 503)
        assert body["type"] == "urn:sprongus:problem:key-provider-unavailable"
        assert CANARY not in answer.get_data(as_text=True)
        assert api.call("GET", path).status_code == 200  # a masked read needs no KMS
    finally:
        api.close()
