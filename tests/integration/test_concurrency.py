"""Concurrent writers: two processes x several threads setting the same keys through the service.

No lost update (each key's version counts every successful set), every writer sees its own versions increase,
no duplicate rows, and no error ("database is locked", a lost compare-and-set, ...) reaches any caller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sprongus.domain.names import DEFAULT_MAX_VERSIONS
from sprongus.domain.records import AuditAction
from tests.integration.stack import ROOT, clean_environ, environment, new_key, owner, sqlite_url, stack
from tests.pg import PgDatabase

PROCESSES, THREADS, ROUNDS = 2, 4, 8
KEYS = ["db.password", "notion.api_token", "OPENAI_API_KEY"]


def run_workers(env: dict[str, str], scope: str, subject: str = "owner", projects: str = "") -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "tests.integration.workers", "set", "--scope", scope, "--keys", ",".join(KEYS),
               "--threads", str(THREADS), "--rounds", str(ROUNDS), "--subject", subject, "--projects", projects]
    full_env = {**clean_environ(), **env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}",
                "SPRONGUS_RATE_LIMIT_WRITE": "100000/minute"}  # tenants are rate limited; this is not under test
    command += ["--start-at", str(time.time() + 3)]
    procs = [subprocess.Popen([*command, "--name", f"w{i}"], cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(PROCESSES)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert max(o["started"] for o in outputs) < min(o["finished"] for o in outputs), "the workers did not overlap"
    return outputs


def check_versions(outputs: list[dict[str, Any]]) -> dict[str, int]:
    """Asserts what every caller saw; returns the number of successful sets per key."""
    errors = [e for out in outputs for thread in out["threads"] for e in thread["errors"]]
    assert errors == []
    successes: dict[str, int] = {}
    for key in KEYS:
        seen = []
        for out in outputs:
            for thread in out["threads"]:
                versions = thread["versions"][key]
                assert len(versions) == ROUNDS
                assert versions == sorted(set(versions)), "a writer saw its versions go backwards or repeat"
                seen += versions
        # Each successful set got its own version: no two callers were told the same one, none skipped.
        assert sorted(seen) == list(range(1, len(seen) + 1))
        successes[key] = len(seen)
    return successes


def check_database(url: str, keys: str, scope_text: str, successes: dict[str, int]) -> None:
    from sprongus.domain.scope import Scope

    scope = Scope.parse(scope_text)
    vault = stack(url, keys)
    try:
        service = vault
        for key in KEYS:
            assert service.secrets.get(owner(), scope, key).version == successes[key]
        m = vault.models.secret
        places = Counter((r.owner_type, r.owner_id, r.key_name) for r in m.select(m.owner_type, m.owner_id,
                                                                                    m.key_name))
        assert sorted(places.values()) == [1] * len(KEYS)
        a = vault.models.audit
        actions = Counter(r.action for r in a.select(a.action))
        assert actions[AuditAction.CREATE.value] == len(KEYS)
        assert actions[AuditAction.CREATE.value] + actions[AuditAction.UPDATE.value] == sum(successes.values())
        report = service.rotation.verify(owner())
        assert report.ok, (report.failures, report.audit_problems)
        # verify checks every stored version: each key's current one and the ones it keeps (10 at most)
        assert report.checked == sum(min(n, DEFAULT_MAX_VERSIONS) for n in successes.values())
    finally:
        vault.close()


def test_processes_and_threads_on_one_sqlite_file(tmp_path: Path) -> None:
    keys = new_key()
    url = sqlite_url(tmp_path)  # not created yet: both processes race to create and migrate it, too
    outputs = run_workers(environment(url, keys), "project:p1")
    successes = check_versions(outputs)
    assert successes == dict.fromkeys(KEYS, PROCESSES * THREADS * ROUNDS)
    check_database(url, keys, "project:p1", successes)


def test_processes_and_threads_on_postgres_as_the_app_role(pg_db: PgDatabase) -> None:
    keys = new_key()
    outputs = run_workers(environment(pg_db.app_url, keys), "project:p1", subject="alice", projects="p1")
    successes = check_versions(outputs)
    assert successes == dict.fromkeys(KEYS, PROCESSES * THREADS * ROUNDS)
    check_database(pg_db.maintenance_url, keys, "project:p1", successes)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_threads_in_one_process_share_one_service(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The API's case: one container, many request threads, each with its own connection."""
    import threading

    from sprongus.domain.scope import Scope
    from sprongus.domain.values import SecretValue

    url = sqlite_url(tmp_path) if engine == "sqlite" else request.getfixturevalue("pg_db").maintenance_url
    keys = new_key()
    vault = stack(url, keys)
    errors: list[BaseException] = []
    versions: list[int] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        for i in range(15):
            try:
                versions.append(vault.secrets.set(owner(), Scope.system(), "shared", SecretValue(str(i))).view.version)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert sorted(versions) == list(range(1, 8 * 15 + 1))
        assert vault.secrets.get(owner(), Scope.system(), "shared").version == 8 * 15
        assert vault.audit.verify_chain().problems == []
    finally:
        vault.close()
