"""Identity federation end to end, for real: gunicorn (2 workers) on Postgres as the RLS app role with Redis
limits, a local OIDC issuer on loopback, and real `sprongus` processes.

- a CI job exchanges its GitHub-shaped JWT and reads 200 secrets with one batch request (and cannot replay it);
- `sprongus secrets run --remote` with a Kubernetes-shaped JWT in SPRONGUS_OIDC_TOKEN_FILE reads 50 secrets;
- a person signs in with the device flow, reveals, is asked to step up once the sign-in is older than the max age,
  steps up and reveals again; `logout` revokes the token on both workers;
- a key-prefix token sees nothing else.

The issuer serves http on loopback, which only a non-prod profile accepts, so the stack runs `dev` with an env master
key; everything else (workers, database role, limits) is the production shape.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import TOKEN_CACHE_BOUND, Machine, Proc
from tests.e2e.gunicorn.conftest import redis_database, start_gunicorn, stop
from tests.harness import CANARY
from tests.oidc.issuer import OidcIssuer
from tests.pg import PgDatabase, fresh_database

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn")

EXCHANGE = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
MAX_AGE = 4  # SPRONGUS_REVEAL_MAX_AGE: short, so the step-up drill waits seconds, not minutes
CLIENT_ID = "sprongus-cli"


@dataclass
class Federation:
    url: str
    log: Path
    machine: Machine
    settings: dict[str, str]
    pg: PgDatabase
    issuer: OidcIssuer
    secrets: list[str] = field(default_factory=list)  # every token and JWT handed out: none may reach the log

    def operator(self, *args: str, input: str | None = None) -> Proc:
        proc = self.machine.run(*args, input=input, env={**self.settings,
                                                         "SPRONGUS_DATABASE_URL": self.pg.maintenance_url})
        assert proc.returncode == 0, (args, proc.stderr)
        return proc

    def person(self, *args: str, **env: str) -> Proc:
        """A person's CLI: remote mode, no SPRONGUS_TOKEN, a home of its own (the 0600 token file lives there)."""
        return self.machine.run(*args, home=self.machine.root / "person",
                                env={"SPRONGUS_API_URL": self.url, "SPRONGUS_ENV": "dev", **env})

    def exchange(self, jwt: str) -> requests.Response:
        self.secrets.append(jwt)
        response = requests.post(f"{self.url}/v1/auth/token", data={**EXCHANGE, "subject_token": jwt}, timeout=30)
        if response.ok:
            self.secrets.append(response.json()["access_token"])
        return response

    def access_lines(self) -> list[tuple[int, dict[str, object]]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            head, sep, payload = line.partition(" sprongus.api.access: ")
            if sep:
                lines.append((int(head.split("[", 1)[1].split("]", 1)[0]), json.loads(payload)))
        return lines

    def audit(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with self.pg.admin() as conn:
            return list(conn.execute(sql, params).fetchall())


def _seed(fed: Federation, scope: str, names: list[str]) -> None:
    document = fed.machine.root / f"seed-{scope.replace(':', '-')}.json"
    document.write_text(json.dumps({name: f"{CANARY}-{name}" for name in names}))
    fed.operator("secrets", "import", "--file", str(document), "--format", "json", "--scope", scope,
                 "--allow-plaintext")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("identity")
    with ExitStack() as stack:
        issuer = stack.enter_context(OidcIssuer())
        issuer.poll_interval = 0
        pg = stack.enter_context(fresh_database(migrated=True))
        redis_url = stack.enter_context(redis_database())
        machine = Machine(root)
        settings = {
            "SPRONGUS_ENV": "dev",
            "SPRONGUS_MASTER_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
            "SPRONGUS_RATE_LIMIT_STORAGE": redis_url,
            "SPRONGUS_REVEAL_MAX_AGE": str(MAX_AGE),
            "SPRONGUS_OIDC_ISSUER": issuer.url,
            "SPRONGUS_OIDC_CLIENT_ID": CLIENT_ID,
        }
        log = root / "gunicorn.log"
        proc, url = start_gunicorn(machine, {**settings, "SPRONGUS_DATABASE_URL": pg.app_url}, log)
        stack.callback(stop, proc)
        result = Federation(url, log, machine, settings, pg, issuer)
        yield result
        stack.close()
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        assert CANARY not in text
        for secret in result.secrets:
            assert secret not in text


def test_a_ci_job_exchanges_its_jwt_and_reads_200_secrets_in_one_request(fed: Federation) -> None:
    names = [f"ci.key{i:03d}" for i in range(200)]
    _seed(fed, "project:shop", names)
    fed.operator("auth", "trust", "add", "gha-shop", "--issuer", fed.issuer.url, "--audience", "sprongus",
                 "--claim", "repository=acme/shop", "--claim", "ref=refs/heads/main", "--subject-prefix", "gha:",
                 "--project", "shop", "--scope", "secrets:read", "--scope", "secrets:reveal")
    jwt = fed.issuer.github_actions_token(repository="acme/shop", ref="refs/heads/main")

    granted = fed.exchange(jwt)
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    answer = requests.post(f"{fed.url}/v1/secrets:reveal", headers={"Authorization": f"Bearer {token}"},
                           json={"ownerType": "project", "ownerId": "shop", "prefix": "ci."}, timeout=30)
    replayed = fed.exchange(jwt)
    other_branch = fed.exchange(fed.issuer.github_actions_token(repository="acme/shop", ref="refs/heads/dev"))

    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    items = answer.json()["items"]
    assert [i["keyName"] for i in items] == names
    assert all(i["value"] == f"{CANARY}-{i['keyName']}" for i in items)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    assert other_branch.status_code == 400 and other_branch.json() == replayed.json()  # no oracle
    subject = "gha:repo:acme/shop:ref:refs/heads/main"
    reveals = [line for _, line in fed.access_lines()
               if line["subject"] == subject and str(line["path"]).startswith("/v1/secrets")]
    assert [line["path"] for line in reveals] == ["/v1/secrets:reveal"]  # one request, not 200
    rows = fed.audit("SELECT request_id, count(*) FROM audit_event WHERE actor = %s AND action = 'reveal' "
                     "AND outcome = 'success' GROUP BY request_id", subject)
    assert len(rows) == 1 and rows[0][1] == 200


def test_secrets_run_remote_with_a_kubernetes_token_file_reads_50_secrets(fed: Federation) -> None:
    names = [f"svc{i:02d}.token" for i in range(50)]
    _seed(fed, "project:svc", names)
    fed.operator("auth", "trust", "add", "k8s-svc", "--issuer", fed.issuer.url, "--audience", "sprongus",
                 "--claim", "sub=system:serviceaccount:svc:worker", "--subject-prefix", "k8s:",
                 "--project", "svc", "--scope", "secrets:read", "--scope", "secrets:reveal")
    jwt_file = fed.machine.root / "k8s-token"
    jwt = fed.issuer.kubernetes_token(namespace="svc", service_account="worker")
    fed.secrets.append(jwt)
    jwt_file.write_text(jwt)
    count = "import os; print(sum(v.startswith('CANARY-') for v in os.environ.values()))"

    run = fed.person("secrets", "run", "project:svc", "--remote", "--", sys.executable, "-c", count,
                     SPRONGUS_OIDC_TOKEN_FILE=str(jwt_file))

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "50"
    assert jwt not in run.stderr and "spr_" not in run.stderr
    batch = [line for _, line in fed.access_lines()
             if line["subject"] == "k8s:system:serviceaccount:svc:worker" and line["path"] == "/v1/secrets:reveal"]
    assert len(batch) == 1


def test_a_person_logs_in_steps_up_and_logs_out_on_both_workers(fed: Federation) -> None:
    _seed(fed, "project:people", ["notion.api_token"])
    fed.operator("auth", "trust", "add", "people", "--kind", "user", "--issuer", fed.issuer.url,
                 "--audience", CLIENT_ID, "--subject-claim", "email", "--project", "people",
                 "--scope", "secrets:read", "--scope", "secrets:reveal", "--ttl", "1h")
    fed.issuer.auto_approve(subject="alice", email="alice@example.com", after_polls=0)
    reveal = ("secrets", "get", "project:people", "notion.api_token", "--reveal", "--yes", "--remote")

    login = fed.person("login", "--oidc")
    status = fed.person("auth", "status", "--json")
    first = fed.person(*reveal)
    time.sleep(MAX_AGE + 1.5)
    stale = fed.person(*reveal)
    step_up = fed.person("login", "--oidc", "--step-up")
    again = fed.person(*reveal)

    assert login.returncode == 0, login.stderr
    assert status.returncode == 0 and json.loads(status.stdout)["subject"] == "alice@example.com"
    assert json.loads(status.stdout)["kind"] == "user"
    assert first.returncode == 0 and first.stdout.strip() == f"{CANARY}-notion.api_token", first.stderr
    assert stale.returncode == 4 and "--step-up" in stale.stderr and CANARY not in stale.stderr + stale.stdout
    assert step_up.returncode == 0, step_up.stderr
    assert fed.issuer.device_requests[-1].get("max_age") == "0"
    assert fed.issuer.device_requests[-1].get("prompt") == "login"
    assert again.returncode == 0 and again.stdout.strip() == f"{CANARY}-notion.api_token", again.stderr
    token_file = fed.machine.root / "person" / "api-tokens.json"
    assert token_file.stat().st_mode & 0o077 == 0
    token = json.loads(token_file.read_text())["tokens"][fed.url]
    fed.secrets.append(token)

    logout = fed.person("logout")
    time.sleep(TOKEN_CACHE_BOUND)  # the worker that took the logout forgot it at once; the other within the bound
    def refusing_workers() -> set[int]:
        return {pid for pid, line in fed.access_lines() if line["path"] == "/v1/auth/whoami" and line["status"] == 401}

    # The kernel hands new connections to either worker, not in turn: ask until both have answered (or 80 tries).
    answers = []
    while len(answers) < 80 and (len(answers) < 12 or len(refusing_workers()) < 2):
        answers.append(requests.get(f"{fed.url}/v1/auth/whoami", timeout=10,
                                    headers={"Authorization": f"Bearer {token}", "Connection": "close"}))

    assert logout.returncode == 0, logout.stderr
    assert {a.status_code for a in answers} == {401}
    assert len(refusing_workers()) == 2  # both workers refused it: revocation is not one process's memory
    assert token not in token_file.read_text()
    for proc in (login, status, first, stale, step_up, again, logout):
        assert "spr_" not in proc.stderr and "eyJ" not in proc.stderr


def test_a_key_prefix_token_sees_nothing_else(fed: Federation) -> None:
    _seed(fed, "project:notion", ["notion.api_token", "stripe.key"])
    fed.operator("auth", "trust", "add", "notion-worker", "--issuer", fed.issuer.url, "--audience", "sprongus",
                 "--claim", "sub=system:serviceaccount:notion:worker", "--project", "notion",
                 "--key-prefix", "notion.", "--scope", "secrets:read", "--scope", "secrets:reveal")
    granted = fed.exchange(fed.issuer.kubernetes_token(namespace="notion", service_account="worker"))
    assert granted.status_code == 200, granted.text
    auth = {"Authorization": f"Bearer {granted.json()['access_token']}"}

    hidden = requests.get(f"{fed.url}/v1/secrets/project/notion/stripe.key", headers=auth, timeout=10)
    absent = requests.get(f"{fed.url}/v1/secrets/project/notion/notion.nothing", headers=auth, timeout=10)
    listed = requests.get(f"{fed.url}/v1/secrets", params={"ownerType": "project", "ownerId": "notion"},
                          headers=auth, timeout=10)
    batch = requests.post(f"{fed.url}/v1/secrets:reveal", headers=auth, timeout=10,
                          json={"ownerType": "project", "ownerId": "notion",
                                "keys": ["notion.api_token", "stripe.key"]})

    assert hidden.status_code == 404 and hidden.json() == absent.json()
    assert [i["keyName"] for i in listed.json()["items"]] == ["notion.api_token"]
    assert batch.status_code == 200
    assert [i["keyName"] for i in batch.json()["items"]] == ["notion.api_token"]
    assert batch.json()["missing"] == ["stripe.key"]
