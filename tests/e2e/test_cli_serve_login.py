"""`sprongus serve`, `sprongus login` without a keychain and `--remote` against the real development server, and
gunicorn's boot failures: real processes, as an operator on a headless machine meets them."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, one_error_line
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain")

NO_KEYCHAIN = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(machine: Machine, log: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`sprongus serve` on a free port, its stderr going to a file (not a terminal)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(machine.argv("serve", "--port", str(port)), stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, env=machine.env(), cwd=machine.root, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while b"serving the sprongus API" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: how it stops
            proc.wait(10)


@contextmanager
def html_404_server() -> Iterator[str]:
    """Any web server that is not the API: an HTML 404 page for every path."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_login_without_a_keychain_keeps_the_token_in_a_0600_file_that_remote_commands_use(machine: Machine,
                                                                                           tmp_path: Path) -> None:
    machine.ok("secrets", "set", SCOPE, "db.password", "-", input=CANARY)
    token = machine.ok("tokens", "create", "--subject", "alice", "--scope", "secrets:read", "--project", "p1",
                       ).stdout.strip()
    log = tmp_path / "serve.log"
    with serving(machine, log) as (port, proc):
        url = f"http://127.0.0.1:{port}"
        login = machine.run("login", "--api-url", url + "/v1/", input=token + "\n", env=NO_KEYCHAIN)
        remote = {**NO_KEYCHAIN, "SPRONGUS_REMOTE": "1", "SPRONGUS_API_URL": url}
        listed = machine.run("secrets", "list", SCOPE, env=remote)
        with_v1 = machine.run("secrets", "list", SCOPE, env={**remote, "SPRONGUS_API_URL": url + "/v1"})
        shown = machine.run("secrets", "get", SCOPE, "db.password", "--json", env=remote)
        env_wins = machine.run("secrets", "list", SCOPE, env={**remote, "SPRONGUS_TOKEN": "spr_" + "x" * 43})
        token_file = machine.home / "api-tokens.json"
        token_file.chmod(0o640)
        loose = machine.run("secrets", "list", SCOPE, env=remote)
        token_file.chmod(0o600)
        # The file keeps one token per API URL: these other URLs get theirs from the environment.
        wrong_path = machine.run("secrets", "list", SCOPE,
                                 env={**remote, "SPRONGUS_API_URL": url + "/api/v1", "SPRONGUS_TOKEN": token})
        with html_404_server() as other:
            other_server = machine.run("secrets", "list", SCOPE,
                                       env={**remote, "SPRONGUS_API_URL": other, "SPRONGUS_TOKEN": token})
    served = log.read_text(errors="replace")

    assert proc.returncode == 0, served  # Ctrl-C stops it quietly
    assert login.returncode == 0, login.stderr
    assert f"warning: no OS keychain is available; the token is kept in {token_file} (mode 0600)" in login.stderr
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert (listed.returncode, listed.stdout.split()[:2]) == (0, ["KEY", "VERSION"]), listed.stderr
    assert "db.password" in listed.stdout
    assert (with_v1.returncode, with_v1.stdout) == (0, listed.stdout)  # `/v1` or not: the same API, the same token
    assert shown.returncode == 0 and CANARY not in shown.stdout + shown.stderr
    assert env_wins.returncode == 4  # SPRONGUS_TOKEN still wins over the file
    assert loose.returncode == 7
    one_error_line(loose.stderr, naming="chmod 600")
    for refused in (wrong_path, other_server):
        assert refused.returncode == 2
        line = one_error_line(refused.stderr, naming="SPRONGUS_API_URL")
        assert "<" not in line and "requested URL" not in line
    for proc_output in (login, listed, with_v1, shown, env_wins, loose, wrong_path, other_server):
        assert token not in proc_output.stdout + proc_output.stderr
    assert token not in served and CANARY not in served
    assert "\x1b[" not in served  # a log file gets no colour codes
    assert "GET /v1/secrets" in served  # the request lines are there, plain


def test_serve_on_a_busy_port_says_so_in_one_line_before_announcing_anything(machine: Machine) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = machine.run("serve", "--port", str(port))

    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: port {port} is in use; stop what listens there or choose another "
                                        "--port"]
    assert not (machine.home / "vault.db").exists()  # nothing built for a server that cannot listen


@pytest.mark.parametrize("provider", ["memory", "file"])
def test_gunicorn_prints_a_boot_failure_as_its_one_useful_line(machine: Machine, provider: str) -> None:
    pytest.importorskip("gunicorn")
    from tests.e2e.gunicorn.conftest import gunicorn_conf

    env = machine.env(extra={"SPRONGUS_ENV": "prod", "SPRONGUS_KEY_PROVIDER": provider,
                             "SPRONGUS_DATABASE_URL": f"sqlite:///{machine.home / 'vault.db'}",
                             "SPRONGUS_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379",
                             "SPRONGUS_BIND": f"127.0.0.1:{free_port()}", "WEB_CONCURRENCY": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", gunicorn_conf(),
                             "sprongus.entrypoints.api:create_app()"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            cwd=machine.root, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = output.decode(errors="replace")

    assert proc.returncode not in (0, None), text
    assert "Traceback" not in text and 'File "' not in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    assert "SPRONGUS_KEY_PROVIDER" in errors[0] and "SPRONGUS_ALLOW_LOCAL_KEYS" in errors[0]
    assert len(text.splitlines()) < 15, text
