"""sprongus.client.Client against real gunicorn (2 workers, Postgres as the app role, Redis limits).

- On the production-shaped stack (conftest `stack`): set (201, then 200), get, list, reveal, reveal_many of 200
  secrets in one request, and a rate limit whose Retry-After is past the client's cap raised at once.
- On a stack of its own (`rig`: `dev`, so a loopback http issuer can be trusted; Postgres behind a TCP proxy): a
  database outage answered 503 and waited out until the database is back, and a Kubernetes-style token file whose
  exchanged token (a 5 s trust TTL) is renewed with the file's next JWT before it expires, refused with a clear
  error when the file was not renewed, and renewed once after a 401.

Retries after a 429 with a short Retry-After are in tests/unit/test_client_retries.py: this stack's limits are per
minute, so its Retry-After is tens of seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from sprongus.client import Client, RateLimited, Unauthenticated
from tests.e2e.conftest import TOKEN_CACHE_BOUND, Machine, Proc
from tests.e2e.gunicorn.conftest import (
    ALL_SCOPES,
    REVEAL_LIMIT,
    Stack,
    b64key,
    redis_database,
    start_gunicorn,
    stop,
)
from tests.e2e.gunicorn.tcp_proxy import TcpProxy
from tests.harness import CANARY
from tests.oidc.issuer import OidcIssuer
from tests.pg import HOST, PORT, PgDatabase, fresh_database

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn")


def _import(operator: Callable[..., Proc], root: Path, scope: str, values: dict[str, str]) -> None:
    """Secrets written as the operator (no write limit), as docs/cli.md's import does."""
    document = root / f"{uuid.uuid4().hex}.json"
    document.write_text(json.dumps(values))
    proc = operator("secrets", "import", "--file", str(document), "--format", "json", "--scope", scope,
                    "--allow-plaintext")
    assert proc.returncode == 0, proc.stderr


def test_set_get_list_and_reveal(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    project = stack.unique("sdk")
    token = stack.token(stack.unique("sdk-app"), ALL_SCOPES, (project,))
    client = Client(stack.url, token)
    scope = f"project:{project}"

    with caplog.at_level("DEBUG"):
        created = client.set(scope, "notion.api_token", f"{CANARY}-1", meta={"provider": "notion"})
        updated = client.set(scope, "notion.api_token", f"{CANARY}-2")
        client.set(scope, "notion.workspace_id", "ws_42")
        info = client.get(scope, "notion.api_token")
        listed = [i.key for i in client.list(scope, prefix="notion.")]
        value = client.reveal(scope, "notion.api_token")

    assert (created.created, created.version, updated.created, updated.version) == (True, 1, False, 2)
    assert (info.version, info.meta, info.scope) == (2, {"provider": "notion"}, scope)
    assert listed == ["notion.api_token", "notion.workspace_id"]
    assert value == f"{CANARY}-2"
    assert CANARY not in caplog.text and token not in caplog.text
    assert CANARY not in repr(client) + repr(info) and token not in repr(client)


def test_reveal_many_reads_200_secrets_in_one_request(stack: Stack) -> None:
    project, subject = stack.unique("sdk-batch"), stack.unique("sdk-batch-app")
    values = {f"ci.key{i:03d}": f"{CANARY}-{i}" for i in range(200)}
    _import(stack.operator, stack.machine.root, f"project:{project}", values)
    client = Client(stack.url, stack.token(subject, ALL_SCOPES, (project,)))

    revealed = client.reveal_many(f"project:{project}", prefix="ci.")

    assert revealed == values
    paths = [line["path"] for _, line in stack.access_lines() if line["subject"] == subject]
    assert paths == ["/v1/secrets:reveal"]


def test_a_rate_limit_longer_than_the_cap_is_raised_at_once(stack: Stack) -> None:
    project, subject = stack.unique("sdk-limit"), stack.unique("sdk-limit-app")
    _import(stack.operator, stack.machine.root, f"project:{project}", {"notion.api_token": CANARY})
    client = Client(stack.url, stack.token(subject, ALL_SCOPES, (project,)), max_retry_wait=1)
    for _ in range(REVEAL_LIMIT):
        client.reveal(f"project:{project}", "notion.api_token")

    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        client.reveal(f"project:{project}", "notion.api_token")

    assert time.monotonic() - started < 5
    assert caught.value.policy == "reveal" and 1 < caught.value.retry_after <= 60
    statuses = [line["status"] for _, line in stack.access_lines() if line["subject"] == subject]
    assert statuses == [200] * REVEAL_LIMIT + [429]  # asked once, not retried into the same refusal


# --- a stack of its own: a database outage, an OIDC issuer -------------------------------------------------------

@dataclass
class Rig:
    url: str
    log: Path
    machine: Machine
    settings: dict[str, str]
    pg: PgDatabase
    pg_proxy: TcpProxy
    issuer: OidcIssuer

    def operator(self, *args: str, input: str | None = None) -> Proc:
        proc = self.machine.run(*args, input=input, env={**self.settings,
                                                         "SPRONGUS_DATABASE_URL": self.pg.maintenance_url})
        assert proc.returncode == 0, (args, proc.stderr)
        return proc

    def trust(self, name: str, ttl: str) -> None:
        """A workload trust for the `worker` service account of namespace `name`, on project `name`."""
        self.operator("auth", "trust", "add", name, "--issuer", self.issuer.url, "--audience", "sprongus",
                      "--claim", f"sub=system:serviceaccount:{name}:worker", "--subject-prefix", "k8s:",
                      "--project", name, "--scope", "secrets:read", "--scope", "secrets:reveal", "--ttl", ttl)

    def access(self, path: str) -> list[tuple[str, int]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            _, sep, payload = line.partition(" sprongus.api.access: ")
            if sep and json.loads(payload)["path"] == path:
                lines.append((json.loads(payload)["method"], json.loads(payload)["status"]))
        return lines


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("client")
    with ExitStack() as stack:
        issuer = stack.enter_context(OidcIssuer())
        pg = stack.enter_context(fresh_database(migrated=True))
        redis_url = stack.enter_context(redis_database())
        machine = Machine(root)
        settings = {"SPRONGUS_ENV": "dev", "SPRONGUS_MASTER_KEYS": f"k1:{b64key()}",
                    "SPRONGUS_HMAC_KEYS": f"h1:{b64key()}", "SPRONGUS_RATE_LIMIT_STORAGE": redis_url}
        proxy = TcpProxy((HOST, PORT))
        server = {**settings, "SPRONGUS_DATABASE_URL": f"postgresql://{pg.app_role}@127.0.0.1:{proxy.port}/{pg.name}",
                  "SPRONGUS_DB_STATEMENT_TIMEOUT": "1", "SPRONGUS_DB_CONNECT_TIMEOUT": "2",
                  "SPRONGUS_READY_MAX_AGE": "0"}
        log = root / "gunicorn.log"
        proc, url = start_gunicorn(machine, server, log)
        stack.callback(stop, proc)
        result = Rig(url, log, machine, settings, pg, proxy, issuer)
        stack.callback(lambda: result.pg_proxy.kill())
        yield result
        stack.close()
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        assert CANARY not in text


def test_a_database_outage_is_waited_out(rig: Rig) -> None:
    made = rig.operator("tokens", "create", "--subject", "sdk-outage", "--project", "outage", "--scope",
                        "secrets:read", "--scope", "secrets:write", "--ttl", "1h")
    client = Client(rig.url, made.stdout.strip(), retries=8)
    client.set("project:outage", "db.password", CANARY)
    for _ in range(4):  # both workers hold a pooled connection, which the outage then breaks
        client.get("project:outage", "db.password")
    path = "/v1/secrets/project/outage/db.password"
    answers: list[object] = []

    rig.pg_proxy.kill()
    reader = threading.Thread(target=lambda: answers.append(client.get("project:outage", "db.password")))
    reader.start()
    deadline = time.monotonic() + 20
    while ("GET", 503) not in rig.access(path):
        assert time.monotonic() < deadline, "the API never answered 503 during the outage"
        time.sleep(0.05)
    rig.pg_proxy = TcpProxy(rig.pg_proxy.target, rig.pg_proxy.port)  # the database is back
    reader.join(60)

    assert len(answers) == 1 and getattr(answers[0], "version", None) == 1
    during = rig.access(path)[5:]  # after the set and the four reads
    assert during[0] == ("GET", 503) and during[-1] == ("GET", 200)
    assert set(during[:-1]) == {("GET", 503)}


class TokenFile:
    """A projected service-account token: the kubelet writes a new JWT into the same file."""

    def __init__(self, rig: Rig, namespace: str) -> None:
        self.rig, self.namespace = rig, namespace
        self.path = rig.machine.root / f"{namespace}-token"
        self.jwts: list[str] = []
        self.rotate()

    def rotate(self) -> None:
        self.jwts.append(self.rig.issuer.kubernetes_token(namespace=self.namespace, service_account="worker"))
        self.path.write_text(self.jwts[-1])


def _exchanges(rig: Rig) -> list[int]:
    return [status for _, status in rig.access("/v1/auth/token")]


def test_a_token_file_is_renewed_before_the_token_expires(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.trust("renew", "5s")
    _import(rig.operator, rig.machine.root, "project:renew", {"notion.api_token": CANARY})
    jwt = TokenFile(rig, "renew")
    client = Client.from_env({"SPRONGUS_API_URL": rig.url, "SPRONGUS_OIDC_TOKEN_FILE": str(jwt.path)})
    before = len(_exchanges(rig))

    with caplog.at_level("DEBUG"):
        first = client.reveal("project:renew", "notion.api_token")
        exchanged_at = time.monotonic()
        again = client.reveal("project:renew", "notion.api_token")  # the file is unchanged: the token serves on
        assert _exchanges(rig)[before:] == [200]
        jwt.rotate()
        renewed = client.reveal("project:renew", "notion.api_token")
        renewed_at = time.monotonic()
        assert _exchanges(rig)[before:] == [200, 200] and renewed_at - exchanged_at < 5  # before it expired
        time.sleep(max(0.0, renewed_at + 4.2 - time.monotonic()))  # the new token has under a second left
        with pytest.raises(Unauthenticated) as stale:
            client.reveal("project:renew", "notion.api_token")
        jwt.rotate()
        last = client.reveal("project:renew", "notion.api_token")

    assert [first, again, renewed, last] == [CANARY] * 4
    assert str(stale.value).startswith(f"SPRONGUS_OIDC_TOKEN_FILE: {jwt.path} still holds a JWT that was "
                                       "already exchanged")
    assert _exchanges(rig)[before:] == [200, 200, 200]  # the stale JWT was never sent again
    reveals = rig.access("/v1/secrets/project/renew/notion.api_token:reveal")
    assert reveals == [("POST", 200)] * 4  # renewed in time: no request met an expired token
    shown = caplog.text + repr(client) + str(stale.value)
    assert all(secret not in shown for secret in (*jwt.jwts, CANARY))


def test_a_revoked_token_is_renewed_once_from_the_file(rig: Rig) -> None:
    rig.trust("revoked", "1h")
    _import(rig.operator, rig.machine.root, "project:revoked", {"notion.api_token": CANARY})
    jwt = TokenFile(rig, "revoked")
    client = Client(rig.url, token_file=jwt.path)
    reveal = "/v1/secrets/project/revoked/notion.api_token:reveal"

    def revoke_live_token() -> None:
        listed = json.loads(rig.operator("tokens", "list", "--json").stdout)
        live = [t["id"] for t in listed if t["trust"] == "revoked" and not t["revoked"]]
        assert len(live) == 1, listed
        rig.operator("tokens", "revoke", live[0])
        # Another process revoked it: each worker refuses it within the token cache's bound (1 s by default).
        time.sleep(TOKEN_CACHE_BOUND)

    assert client.reveal("project:revoked", "notion.api_token") == CANARY
    revoke_live_token()
    jwt.rotate()  # an hour's token is far from its end: only the 401 makes the client read the file again
    assert client.reveal("project:revoked", "notion.api_token") == CANARY
    revoke_live_token()
    with pytest.raises(Unauthenticated, match=r"SPRONGUS_OIDC_TOKEN_FILE: .* refused the token it was exchanged"):
        client.reveal("project:revoked", "notion.api_token")

    assert rig.access(reveal) == [("POST", 200), ("POST", 401), ("POST", 200), ("POST", 401)]
