"""`sprongus keys status` and `keys rotate-master` through the real CLI on a Cloud KMS vault.

The CLI runs in-process (CliRunner, a fresh container per command as a new process would build) and as real
`sprongus` processes, against the in-process gRPC fake of Cloud KMS through the real google-cloud-kms client.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.e2e.conftest import Machine, Vault, one_error_line, run_on_terminal, write_file
from tests.harness import CANARY
from tests.integration.kms import vaults
from tests.integration.kms.gcp_fake import FakeCloudKms

KEY = "projects/sprongus-test/locations/global/keyRings/ring/cryptoKeys/master"
SCOPE = "project:p1"


def version_id(number: int) -> str:
    return f"gcp:{KEY}/cryptoKeyVersions/{number}"


class QuotaCloudKms(FakeCloudKms):
    """Answers `budget` more calls, then refuses every call as Cloud KMS does once a quota is used up."""

    def __init__(self) -> None:
        super().__init__()
        self.budget: int | None = None
        self._budget_lock = threading.Lock()

    def _enter(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        with self._budget_lock:
            spent = self.budget is not None and self.budget <= 0
            if self.budget is not None:
                self.budget -= 1
        if spent:
            self.calls[method] += 1
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric 'Cryptographic "
                          "requests'")
        super()._enter(method, request, context)


@pytest.fixture
def kms() -> Iterator[QuotaCloudKms]:
    fake = QuotaCloudKms()
    fake.start()
    fake.create_key(KEY)
    yield fake
    fake.stop()


@pytest.fixture
def keys() -> dict[str, str]:
    """The env master key and value-HMAC key: the vault's keys before it moves to Cloud KMS."""
    return vaults.env_keys()


def gcp(kms: FakeCloudKms, keys: Mapping[str, str], **extra: str) -> dict[str, str]:
    return {"SPRONGUS_KEY_PROVIDER": f"gcp://{KEY}", "SPRONGUS_KMS_ENDPOINT": f"http://127.0.0.1:{kms.port}",
            "SPRONGUS_KMS_TIMEOUT": "5", "SPRONGUS_HMAC_KEYS": keys["SPRONGUS_HMAC_KEYS"],
            "SPRONGUS_BATCH_SIZE": "4", **extra}


def counts(vault: Vault) -> dict[str, int]:
    by_key: dict[str, int] = vault.status()["secretsByMasterKey"]  # type: ignore[assignment]
    return by_key


def import_secrets(vault: Vault, tmp_path: Path, count: int) -> dict[str, str]:
    secrets = {f"svc{i}.token": f"{CANARY}-{i}" for i in range(count)}
    path = write_file(tmp_path, "secrets.json", secrets)
    vault.ok("secrets", "import", "--file", path, "--scope", SCOPE, "--allow-plaintext")
    return secrets


def test_status_counts_each_master_key_and_rotate_master_moves_env_secrets_to_kms(
        kms: QuotaCloudKms, keys: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    on_env = Vault(home, {"SPRONGUS_KEY_PROVIDER": "env", **keys})
    for key in ("a", "b", "c"):
        on_env.set(key, f"{CANARY}-{key}")
    assert on_env.status()["currentKeyId"] == "env:k1"

    switched = Vault(home, gcp(kms, keys, SPRONGUS_KEY_PROVIDERS_RETIRED="env",
                               SPRONGUS_MASTER_KEYS=keys["SPRONGUS_MASTER_KEYS"]))
    switched.set("d", f"{CANARY}-d")  # new writes go to Cloud KMS at once
    switched.set("e", f"{CANARY}-e")
    status = switched.status()
    assert (status["provider"], status["location"]) == ("gcp", f"gcp://{KEY}")
    assert status["currentKeyId"] == version_id(1)
    assert status["secretsByMasterKey"] == {"env:k1": 3, version_id(1): 2}

    text = switched.ok("keys", "status").stdout
    assert f"current key: {version_id(1)}" in text
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in text.splitlines()[4:]}
    assert rows == {"env:k1": ["3", "old: run keys rotate-master"], version_id(1): ["2", "current"]}

    result = switched.ok("keys", "rotate-master")
    assert result.stdout == f"re-wrapped 3 secrets onto {version_id(1)}\n"
    # CliRunner's stderr is no terminal: the one notice line, no progress bar.
    assert result.stderr == f"3 secrets not on {version_id(1)} yet: re-wrapping them\n"
    assert counts(switched) == {version_id(1): 5}

    # The env master key is gone from the configuration: every value opens through Cloud KMS alone.
    after = Vault(home, gcp(kms, keys))
    decrypts = kms.calls["Decrypt"]
    assert after.values() == {k: f"{CANARY}-{k}" for k in "abcde"}
    # One KMS call per reveal, plus each command's check that the key matches the vault (a list and 5 reveals).
    assert kms.calls["Decrypt"] - decrypts == 5 + 6


def test_an_interrupted_rotate_master_resumes_where_it_stopped(kms: QuotaCloudKms, keys: dict[str, str],
                                                              tmp_path: Path) -> None:
    vault = Vault(tmp_path / "home", gcp(kms, keys))  # SPRONGUS_BATCH_SIZE=4
    secrets = import_secrets(vault, tmp_path, 11)
    kms.add_version(KEY)  # rotated in Cloud KMS: version 2 is primary
    assert vault.status()["currentKeyId"] == version_id(2)
    assert counts(vault) == {version_id(1): 11}

    # The vault's key check at start asks for the current version and opens its record (an Encrypt and a
    # Decrypt), the command asks for the current version (one Encrypt), rotate_master checks it again and asks
    # once more (two), then each row is a Decrypt and an Encrypt: the quota runs out three calls into the second
    # batch of four.
    kms.budget = 5 + 2 * 4 + 3
    started = time.monotonic()
    failed = vault("keys", "rotate-master")
    assert failed.exit_code == 8, (failed.stdout, failed.stderr)  # KeyProviderUnavailable: retry later (was 1)
    # The refusals are retried until SPRONGUS_KMS_TIMEOUT (5 s), once: the page read ahead while the failing one
    # retried makes no KMS call of its own (it used to wait out a second timeout).
    assert time.monotonic() - started < 8
    assert "ResourceExhausted" in one_error_line(failed.stderr, naming="retry later")
    assert CANARY not in failed.stdout + failed.stderr

    kms.budget = None  # the quota refills (`keys status` asks Cloud KMS for the current version too)
    assert counts(vault) == {version_id(1): 7, version_id(2): 4}  # the first batch stayed done, no half batch
    decrypts = kms.calls["Decrypt"]
    rerun = vault.ok("keys", "rotate-master")
    assert rerun.stderr == f"7 secrets not on {version_id(2)} yet: re-wrapping them\n"
    assert rerun.stdout == f"re-wrapped 7 secrets onto {version_id(2)}\n"
    assert kms.calls["Decrypt"] - decrypts == 1 + 7  # the key check's one, and rows already moved were not visited
    assert counts(vault) == {version_id(2): 11}

    kms.disable(f"{KEY}/cryptoKeyVersions/1")  # nothing needs version 1 any more
    assert vault.values() == secrets


class KmsMachine(Machine):
    """Real `sprongus` processes with a KMS configuration in their environment."""

    def __init__(self, root: Path, settings: Mapping[str, str]) -> None:
        super().__init__(root)
        self.settings = dict(settings)

    def env(self, home: Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return super().env(home, {**self.settings, **(extra or {})})


@pytest.mark.skipif(sys.platform != "linux", reason="needs a pty")
def test_rotate_master_shows_a_progress_bar_only_on_a_terminal(kms: QuotaCloudKms, keys: dict[str, str],
                                                               tmp_path: Path) -> None:
    settings = gcp(kms, keys)
    machine = KmsMachine(tmp_path, settings)
    vault = Vault(machine.home, settings)  # the same vault in-process, for the quick set-up and checks
    secrets = import_secrets(vault, tmp_path, 9)

    kms.add_version(KEY)
    code, screen = run_on_terminal(machine, ["keys", "rotate-master"], [])
    assert code == 0, screen
    assert re.search(rb"re-wrapping\s+\[#+\]\s+100%", screen), screen
    assert f"re-wrapped 9 secrets onto {version_id(2)}".encode() in screen

    kms.add_version(KEY)
    piped = machine.ok("keys", "rotate-master")  # stdout and stderr are pipes
    assert piped.stderr == f"9 secrets not on {version_id(3)} yet: re-wrapping them\n"
    assert piped.stdout == f"re-wrapped 9 secrets onto {version_id(3)}\n"
    status = json.loads(machine.ok("keys", "status", "--json").stdout)
    assert status["secretsByMasterKey"] == {version_id(3): 9}
    assert vault.values() == secrets
