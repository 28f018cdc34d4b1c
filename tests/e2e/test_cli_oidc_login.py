"""`sprongus login --oidc`, `auth status`, `logout`, the step-up offer and SPRONGUS_OIDC_TOKEN_FILE, for real: the
test OIDC issuer on loopback (device flow, JWKS), `sprongus serve` on a SQLite vault, and the CLI as separate
processes with no OS keychain (so the 0600 token file is used). The terminal paths run on a pty.

One issuer and one server serve the module; each test's CLI has a SPRONGUS_HOME of its own (its token file), and
the operator's commands (trusts, tokens) run on the server's vault. Every CLI output is checked for every JWT the
issuer handed out or the test wrote, every device code and every `spr_` token: none may appear, nor in the
server's log.
"""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TOKEN_CACHE_BOUND, Machine, Proc, one_error_line, run_on_terminal
from tests.e2e.test_cli_json_shapes import checked
from tests.e2e.test_cli_serve_login import NO_KEYCHAIN, free_port
from tests.harness import CANARY
from tests.oidc.issuer import OidcIssuer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain, pty")

CLIENT = "sprongus-cli"
SCOPE = "project:shop"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
CODE_LINE = re.compile(r"^To sign in, open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})$", re.M)


@dataclass
class Server:
    machine: Machine  # its home is the server's vault: the operator's commands run there
    issuer: OidcIssuer
    url: str
    never_logged: list[str] = field(default_factory=list)  # checked against the server's log at the end


@dataclass
class Stack:
    server: Server
    home: Path  # the CLI's own SPRONGUS_HOME: its token file
    outputs: list[str] = field(default_factory=list)  # every CLI stdout and stderr, for the canary check
    jwts: list[str] = field(default_factory=list)  # workload JWTs the test wrote to files

    @property
    def machine(self) -> Machine:
        return self.server.machine

    @property
    def issuer(self) -> OidcIssuer:
        return self.server.issuer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token_file(self) -> Path:
        return self.home / "api-tokens.json"

    def env(self, **extra: str) -> dict[str, str]:
        return self.machine.env(self.home, {**NO_KEYCHAIN, "SPRONGUS_API_URL": self.url, **extra})

    def cli(self, *args: str, input: str | None = None, **env: str) -> Proc:
        proc = self.machine.run(*args, input=input, home=self.home,
                                env={**NO_KEYCHAIN, "SPRONGUS_API_URL": self.url, **env})
        self.outputs += [proc.stdout_bytes.decode(errors="replace"), proc.stderr]
        return proc

    def stored(self) -> dict[str, str]:
        if not self.token_file.exists():
            return {}
        tokens: dict[str, str] = json.loads(self.token_file.read_text())["tokens"]
        return tokens

    def http(self, method: str, path: str, token: str | None = None,
             form: Mapping[str, str] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def exchange(self, id_token: str) -> str:
        status, body = self.http("POST", "/v1/auth/token", form={
            "grant_type": EXCHANGE, "subject_token": id_token, "subject_token_type": ID_TOKEN})
        assert status == 200, body
        token: str = body["access_token"]
        return token

    def stale_user_token(self, subject: str = "alice") -> str:
        """A user token whose sign-in at the IdP was an hour ago: reveals need a step-up."""
        hour_ago = int(time.time()) - 3600
        return self.exchange(self.issuer.mint({"aud": CLIENT, "sub": subject, "auth_time": hour_ago}))

    def secrets_seen(self) -> list[str]:
        """What must never be printed: the issuer's JWTs and device codes, and every API token issued."""
        spr = {t for text in self.outputs for t in re.findall(r"spr_[A-Za-z0-9_-]{20,}", text)}
        return [*self.issuer.id_tokens, *self.jwts, *(g.device_code for g in self.issuer.grants),
                *self.stored().values(), *spr]


def _serve(machine: Machine, env: Mapping[str, str], log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(machine.argv("serve", "--port", str(port)), stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, env=machine.env(extra=env), cwd=machine.root,
                                start_new_session=True)
    deadline = time.monotonic() + 20
    while b"serving the sprongus API" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", proc


PEOPLE = ["--kind", "user", "--audience", CLIENT, "--subject-prefix", "oidc:", "--project", "shop",
          "--scope", "secrets:read", "--scope", "secrets:reveal", "--ttl", "1h"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    machine = Machine(tmp_path_factory.mktemp("oidc-login"))
    log = machine.root / "serve.log"
    with OidcIssuer() as issuer:
        machine.ok("secrets", "set", SCOPE, "db.password", "-", input=CANARY)
        machine.ok("auth", "trust", "add", "people", "--issuer", issuer.url, *PEOPLE)
        # Every call comes from 127.0.0.1 and most as oidc:alice: the module must not meet the per-minute limits.
        url, proc = _serve(machine, {"SPRONGUS_OIDC_ISSUER": issuer.url, "SPRONGUS_OIDC_CLIENT_ID": CLIENT,
                                     "SPRONGUS_OIDC_AUDIENCE": CLIENT, "SPRONGUS_RATE_LIMIT_REVEAL": "1000/minute",
                                     "SPRONGUS_RATE_LIMIT_EXCHANGE": "1000/minute"}, log)
        running = Server(machine, issuer, url)
        try:
            yield running
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
    served = log.read_text(errors="replace")
    assert running.never_logged and CANARY not in served
    for secret in running.never_logged:
        assert secret not in served


@pytest.fixture
def stack(server: Server, tmp_path: Path) -> Iterator[Stack]:
    issuer = server.issuer
    issuer.poll_interval, issuer.device_code_lifetime, issuer.slow_down_once = 0, 600, False
    issuer.auto_approve(subject="alice", after_polls=1)
    issuer.device_requests.clear()
    running = Stack(server, tmp_path / "client")
    yield running
    server.never_logged += running.secrets_seen()


def _no_secrets_printed(stack: Stack) -> None:
    seen = stack.secrets_seen()
    assert seen, "the canary check has nothing to look for"
    for text in stack.outputs:
        for secret in seen:
            assert secret not in text


def test_login_status_reveal_and_logout(stack: Stack) -> None:
    login = stack.cli("login", "--oidc")
    stored = stack.stored()
    status = stack.cli("auth", "status", "--json")
    text_status = stack.cli("auth", "status")
    revealed = stack.cli("secrets", "get", SCOPE, "db.password", "--reveal", "--yes", "--remote")
    token = stored.get(stack.url, "")
    logout = stack.cli("logout")
    after_logout = stack.http("GET", "/v1/auth/whoami", token)
    listed = stack.cli("secrets", "list", SCOPE, "--remote")
    again = stack.cli("logout")

    assert login.returncode == 0, login.stderr
    assert login.stdout == ""  # everything a person reads goes to stderr
    match = CODE_LINE.search(login.stderr)
    assert match and match[1] == f"{stack.issuer.url}/device", login.stderr
    assert f"(or open {stack.issuer.url}/device?user_code={match[2]}, which fills in the code)" in login.stderr
    assert f"warning: no OS keychain is available; the token is kept in {stack.token_file} (mode 0600)" \
        in login.stderr
    assert re.search(r"^logged in as oidc:alice \(expires \d{4}-\d\d-\d\dT[\d:.]+Z\)$", login.stderr, re.M)
    assert stack.issuer.device_requests[-1] == {"client_id": CLIENT, "scope": "openid"}
    assert stat.S_IMODE(stack.token_file.stat().st_mode) == 0o600
    assert token.startswith("spr_") and list(stored) == [stack.url]

    assert status.returncode == 0, status.stderr
    me = json.loads(status.stdout)
    assert {k: me[k] for k in ("subject", "kind", "trust", "scopes", "projects", "keyPrefix", "tokenSource")} == {
        "subject": "oidc:alice", "kind": "user", "trust": "people", "scopes": ["secrets:read", "secrets:reveal"],
        "projects": ["shop"], "keyPrefix": "", "tokenSource": "login"}
    assert 0 <= me["authAgeSeconds"] < 60 and me["expiresAt"].endswith("Z") and me["tokenId"]
    assert text_status.returncode == 0
    assert "subject:    oidc:alice\nkind:       user (trust people)\n" in text_status.stdout
    assert re.search(r"^signed in:  \S+Z \(\d+ s ago\)$", text_status.stdout, re.M), text_status.stdout

    assert (revealed.returncode, revealed.stdout) == (0, CANARY + "\n"), revealed.stderr

    assert logout.returncode == 0, logout.stderr
    assert logout.stderr == f"logged out of {stack.url}: the token is revoked and forgotten\n"
    assert after_logout[0] == 401  # revoked on the server, not only forgotten here
    assert stack.stored() == {}
    assert listed.returncode == 4
    one_error_line(listed.stderr, naming="no API token")
    assert (again.returncode, again.stderr) == (0, f"not logged in to {stack.url}: no token is kept for it\n")
    _no_secrets_printed(stack)


def test_login_json_is_a_summary_and_quiet_keeps_only_the_code_to_enter(stack: Stack) -> None:
    login = stack.cli("-q", "login", "--oidc", "--json")

    assert login.returncode == 0, login.stderr
    summary = checked("login", login.stdout)
    assert {k: summary[k] for k in ("apiUrl", "storedIn", "subject")} == {
        "apiUrl": stack.url, "storedIn": "file", "subject": "oidc:alice"}
    assert summary["expiresAt"].endswith("Z")
    assert list(stack.stored()) == [stack.url]
    # -q drops the wait and the confirmation, never what the person must do (nor the no-keychain warning).
    assert CODE_LINE.search(login.stderr), login.stderr
    assert "Waiting" not in login.stderr and "logged in as" not in login.stderr
    assert "warning: no OS keychain is available" in login.stderr
    _no_secrets_printed(stack)


def test_logout_of_a_token_that_is_already_invalid_still_forgets_it(stack: Stack) -> None:
    stack.cli("login", "--oidc")
    token_id = json.loads(stack.cli("auth", "status", "--json").stdout)["tokenId"]
    stack.machine.ok("tokens", "revoke", token_id)  # the operator revokes it first
    time.sleep(TOKEN_CACHE_BOUND)  # another process revoked it: the server refuses it within the bound

    status = stack.cli("auth", "status")
    logout = stack.cli("logout")

    assert status.returncode == 4
    one_error_line(status.stderr, naming="run `sprongus login --oidc` again")
    assert logout.returncode == 0, logout.stderr
    assert "the token was already invalid (expired or revoked); it is forgotten" in logout.stderr
    assert stack.stored() == {}
    _no_secrets_printed(stack)


def test_logout_with_sprongus_token_revokes_it_and_says_to_unset_it(stack: Stack) -> None:
    token = stack.machine.ok("tokens", "create", "--subject", "ops", "--scope", "secrets:read").stdout.strip()

    logout = stack.cli("logout", SPRONGUS_TOKEN=token)

    assert logout.returncode == 0, logout.stderr
    assert logout.stderr == "the token in SPRONGUS_TOKEN is revoked; unset SPRONGUS_TOKEN in your environment\n"
    assert stack.http("GET", "/v1/auth/whoami", token)[0] == 401
    assert token not in "".join(stack.outputs)


def test_step_up_without_a_terminal_exits_4_with_the_hint(stack: Stack) -> None:
    stack.cli("login", input=stack.stale_user_token() + "\n")  # kept in the token file, as `login --oidc` would

    refused = stack.cli("secrets", "get", SCOPE, "db.password", "--reveal", "--yes", "--remote")
    from_env = stack.cli("secrets", "get", SCOPE, "db.password", "--reveal", "--yes", "--remote",
                         SPRONGUS_TOKEN=stack.stale_user_token("bob"))
    masked = stack.cli("secrets", "get", SCOPE, "db.password", "--remote")  # a masked read needs no step-up

    assert refused.returncode == 4 and refused.stdout == ""
    assert one_error_line(refused.stderr) == ("error: a reveal needs a sign-in less than 900 s old; sign in again "
                                              "with `sprongus login --oidc --step-up`")
    assert from_env.returncode == 4
    one_error_line(from_env.stderr, naming="unset SPRONGUS_TOKEN, then sign in again with `sprongus login --oidc "
                   "--step-up`")
    assert masked.returncode == 0 and CANARY not in masked.stdout
    assert len(stack.issuer.device_requests) == 0  # nothing was offered
    _no_secrets_printed(stack)


def _on_terminal(stack: Stack, args: list[str], replies: list[tuple[bytes, bytes]]) -> tuple[int, str]:
    """sprongus on a pty, remote, answering each (prompt, reply) in turn: (exit code, screen)."""
    code, screen = run_on_terminal(stack.machine, args, replies, env=stack.env(SPRONGUS_REMOTE="1"))
    text = screen.decode(errors="replace")
    stack.outputs.append(text)
    return code, text


STEP_UP_PROMPT = b"Your sign-in is older than 900 s. Sign in again now? [y/N]: "


def test_step_up_on_a_terminal_signs_in_again_and_retries_the_reveal_once(stack: Stack) -> None:
    stack.cli("login", input=stack.stale_user_token() + "\n")
    stale = stack.stored()[stack.url]

    code, screen = _on_terminal(stack, ["secrets", "get", SCOPE, "db.password", "--reveal"],
                                [(b"Reveal the value of db.password in project:shop? [y/N]: ", b"y\n"),
                                 (STEP_UP_PROMPT, b"y\n")])
    fresh = stack.stored()[stack.url]
    run_code, run_screen = _on_terminal(stack, ["secrets", "run", SCOPE, "--", "sh", "-c", 'echo "[$DB_PASSWORD]"'],
                                        [])

    assert code == 0, screen
    assert CODE_LINE.search(screen.replace("\r\n", "\n")), screen
    assert "logged in as oidc:alice (expires " in screen
    assert screen.replace("\r\n", "\n").endswith(CANARY + "\n"), screen
    assert stack.issuer.device_requests == [{"client_id": CLIENT, "scope": "openid", "max_age": "0",
                                             "prompt": "login"}]
    assert fresh != stale and fresh.startswith("spr_")
    assert stack.http("GET", "/v1/auth/whoami", fresh)[1]["authAgeSeconds"] < 60
    assert (run_code, run_screen.strip()) == (0, f"[{CANARY}]")  # the fresh token needs no second step-up
    _no_secrets_printed(stack)


def test_step_up_declined_on_a_terminal_exits_4_with_the_hint(stack: Stack) -> None:
    stack.cli("login", input=stack.stale_user_token() + "\n")

    code, screen = _on_terminal(stack, ["secrets", "get", SCOPE, "db.password", "--reveal", "--yes"],
                                [(STEP_UP_PROMPT, b"n\n")])

    assert code == 4, screen
    assert "error: a reveal needs a sign-in less than 900 s old; sign in again with `sprongus login --oidc " \
           "--step-up`" in screen
    assert CANARY not in screen and stack.issuer.device_requests == []


def test_login_step_up_asks_the_issuer_for_a_fresh_sign_in(stack: Stack) -> None:
    login = stack.cli("login", "--oidc", "--step-up")

    assert login.returncode == 0, login.stderr
    assert stack.issuer.device_requests == [{"client_id": CLIENT, "scope": "openid", "max_age": "0",
                                             "prompt": "login"}]


def test_a_workload_token_file_is_exchanged_once_and_its_token_kept_until_the_file_is_renewed(
        stack: Stack, tmp_path: Path) -> None:
    stack.machine.ok("auth", "trust", "add", "k8s-shop", "--issuer", stack.issuer.url, "--audience", "sprongus",
                     "--claim", "sub=system:serviceaccount:shop:worker", "--subject-prefix", "k8s:",
                     "--project", "shop", "--scope", "secrets:read", "--scope", "secrets:reveal")
    jwt_file = tmp_path / "token"

    def project(namespace: str) -> None:  # what the kubelet does: a fresh token in the file
        stack.jwts.append(stack.issuer.kubernetes_token(namespace=namespace, service_account="worker"))
        jwt_file.write_text(stack.jwts[-1])

    project("shop")
    workload = {"SPRONGUS_OIDC_TOKEN_FILE": str(jwt_file), "SPRONGUS_REMOTE": "1"}

    revealed = stack.cli("secrets", "get", SCOPE, "db.password", "--reveal", "--yes", **workload)
    again = stack.cli("secrets", "list", SCOPE, **workload)  # the same JWT: the kept token, no second exchange
    cache = stack.token_file.with_name("workload-tokens.json")
    cache_mode, cache_text, first_jwt = stat.S_IMODE(cache.stat().st_mode), cache.read_text(), stack.jwts[-1]
    cache.unlink()
    replayed = stack.cli("secrets", "list", SCOPE, **workload)  # nothing kept: the server exchanges a JWT once
    project("shop")
    status = stack.cli("auth", "status", "--json", **workload)
    project("other")
    other = stack.cli("secrets", "list", SCOPE, **workload)
    jwt_file.write_text("x" * (16 * 1024 + 1))
    too_big = stack.cli("secrets", "list", SCOPE, **workload)
    env_wins = stack.cli("secrets", "list", SCOPE, **workload, SPRONGUS_TOKEN="spr_" + "x" * 43)

    assert (revealed.returncode, revealed.stdout) == (0, CANARY + "\n"), revealed.stderr
    assert not stack.token_file.exists()  # a workload's token is not a login
    assert again.returncode == 0, again.stderr
    assert cache_mode == 0o600 and first_jwt not in cache_text and "spr_" in cache_text
    assert replayed.returncode == 4
    assert one_error_line(replayed.stderr) == "error: the identity provider's token was refused (invalid_grant)"
    assert status.returncode == 0, status.stderr
    me = json.loads(status.stdout)
    assert (me["subject"], me["kind"], me["trust"], me["tokenSource"]) == (
        "k8s:system:serviceaccount:shop:worker", "workload", "k8s-shop", "SPRONGUS_OIDC_TOKEN_FILE")
    assert other.returncode == 4
    one_error_line(other.stderr, naming="(invalid_grant)")
    assert too_big.returncode == 2
    one_error_line(too_big.stderr, naming="SPRONGUS_OIDC_TOKEN_FILE")
    assert env_wins.returncode == 4  # SPRONGUS_TOKEN first: the (oversized) file is not even read
    assert "SPRONGUS_OIDC_TOKEN_FILE" not in env_wins.stderr
    _no_secrets_printed(stack)


def test_sign_in_failures_are_one_line_with_their_exit_codes(stack: Stack) -> None:
    stack.issuer.auto_approve(subject=None)
    denier = subprocess.Popen(stack.machine.argv("login", "--oidc"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=stack.env(), cwd=stack.machine.root)
    stack.issuer.deny(stack.issuer.wait_for_device_request(timeout=20))
    out, err = denier.communicate(timeout=30)
    stack.outputs += [out.decode(), err.decode()]
    stack.issuer.device_code_lifetime = 0
    expired = stack.cli("login", "--oidc")
    stack.issuer.device_code_lifetime = 600
    stack.issuer.auto_approve(subject="mallory")
    stack.machine.ok("auth", "trust", "remove", "people")
    try:
        untrusted = stack.cli("login", "--oidc")
    finally:
        stack.machine.ok("auth", "trust", "add", "people", "--issuer", stack.issuer.url, *PEOPLE)
    unreachable = stack.cli("login", "--oidc", "--api-url", f"http://127.0.0.1:{free_port()}")

    assert denier.returncode == 4
    assert one_error_line(err.decode()) == ("error: the sign-in was denied at the identity provider "
                                            "(access_denied)")
    assert expired.returncode == 4
    one_error_line(expired.stderr, naming="expired before it was approved")
    assert untrusted.returncode == 4
    assert one_error_line(untrusted.stderr) == "error: the identity provider's token was refused (invalid_grant)"
    assert unreachable.returncode == 8
    one_error_line(unreachable.stderr, naming="cannot reach the API")
    assert stack.stored() == {}
    _no_secrets_printed(stack)


def test_login_oidc_against_an_api_without_an_issuer(machine: Machine, tmp_path: Path) -> None:
    url, proc = _serve(machine, {}, tmp_path / "serve.log")
    try:
        login = machine.run("login", "--oidc", "--api-url", url, env=NO_KEYCHAIN)
        pasted = machine.run("login", "--api-url", url, input="not-a-token\n", env=NO_KEYCHAIN)
        misuse = machine.run("login", "--step-up", "--api-url", url, env=NO_KEYCHAIN)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)

    assert login.returncode == 2
    one_error_line(login.stderr, naming="no OIDC sign-in configured")
    assert pasted.returncode == 2
    assert one_error_line(pasted.stderr) == ("error: token: an API token starts with spr_, then letters, digits, "
                                             "`-` or `_`")
    assert misuse.returncode == 2
    assert one_error_line(misuse.stderr) == "error: step-up: only goes with --oidc"


PROBE = """
import json, sys
from sprongus.entrypoints.cli.root import main
sys.argv = ["sprongus", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exit:
    print("exit", exit.code, file=sys.stderr)
print(json.dumps(sorted({name.split(".")[0] for name, module in sys.modules.items() if module})), file=sys.stderr)
"""


def test_sign_in_and_remote_reads_stay_light(stack: Stack, tmp_path: Path) -> None:
    """No web framework, JWT library, crypto or storage in a CLI that signs in or reads through the API."""
    stack.machine.ok("auth", "trust", "add", "k8s-light", "--issuer", stack.issuer.url, "--audience", "light",
                     "--project", "shop", "--scope", "secrets:read", "--scope", "secrets:reveal")
    jwt_file = tmp_path / "token"
    stack.jwts.append(stack.issuer.kubernetes_token(audience="light"))
    jwt_file.write_text(stack.jwts[-1])
    for args, env in ((["login", "--oidc"], {}),
                      (["secrets", "get", SCOPE, "db.password", "--reveal", "--yes", "--remote"],
                       {"SPRONGUS_OIDC_TOKEN_FILE": str(jwt_file)})):
        done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
                              env=stack.env(**env), timeout=60, check=False)
        stack.outputs += [done.stdout, done.stderr]
        lines = done.stderr.strip().splitlines()
        assert lines[-2] == "exit 0", done.stderr
        loaded = set(json.loads(lines[-1]))
        assert not loaded & {"flask", "werkzeug", "jwt", "cryptography", "peewee", "dependency_injector", "google",
                             "boto3", "azure", "hvac", "requests"}, (args, loaded)
    _no_secrets_printed(stack)
