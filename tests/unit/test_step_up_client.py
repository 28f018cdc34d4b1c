"""The step-up offer of --remote (cli/login.py: StepUpClient) at unit level: a loopback server that answers every
call with RFC 9470's challenge, a fake terminal and a fake sign-in in place of the device flow (which
tests/e2e/test_cli_oidc_login.py runs for real, on a pty). What is checked here: one offer, one retry, with the new
token, never a loop; and no offer without a terminal or for a workload's token."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from sprongus.domain.errors import StepUpRequired
from sprongus.entrypoints.cli import login
from sprongus.entrypoints.cli.remote import FROM_ENV, FROM_LOGIN, FROM_WORKLOAD
from sprongus.entrypoints.config import Settings

OLD, NEW = "spr_" + "o" * 43, "spr_" + "n" * 43


class Api:
    """Answers 401 step-up to `stale` bearers (all of them when `always`), 200 {} otherwise; records the bearers."""

    def __init__(self) -> None:
        self.bearers: list[str] = []
        self.always = False
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                api.bearers.append(bearer)
                if api.always or bearer == OLD:
                    body = b'{"type": "urn:sprongus:problem:insufficient-user-authentication", "status": 401}'
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="sprongus", '
                                     'error="insufficient_user_authentication", max_age=900')
                else:
                    body = b"{}"
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api() -> Iterator[Api]:
    running = Api()
    threading.Thread(target=running.server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


@pytest.fixture
def user(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A person at a terminal who says yes; the sign-in hands out NEW. Records the questions and sign-ins."""
    seen: dict[str, list[str]] = {"asked": [], "signed_in": []}

    def confirm(question: str, default: bool = False, err: bool = False) -> bool:
        assert err and default is False  # asked on stderr, "no" unless answered
        seen["asked"].append(question)
        return True

    def sign_in(settings: Settings, url: str, *, step_up: bool) -> str:
        seen["signed_in"].append(f"{url} step_up={step_up}")
        return NEW

    monkeypatch.setattr(click, "confirm", confirm)
    monkeypatch.setattr(login, "sign_in_and_keep", sign_in)
    monkeypatch.setattr(login, "on_terminal", lambda: True)
    return seen


def client(api: Api, source: str, tmp_path: Path) -> login.StepUpClient:
    return login.StepUpClient(Settings.from_mapping({"SPRONGUS_HOME": str(tmp_path)}), api.url, OLD, source)


def test_on_a_terminal_it_offers_once_signs_in_and_retries_with_the_new_token(
        api: Api, user: dict[str, list[str]], tmp_path: Path) -> None:
    remote = client(api, FROM_LOGIN, tmp_path)

    assert remote.call("POST", "/secrets/project/p1/k:reveal", {}) == {}
    assert remote.call("POST", "/secrets/project/p1/k:reveal", {}) == {}  # the new token stays in use

    assert user["asked"] == ["Your sign-in is older than 900 s. Sign in again now?"]
    assert user["signed_in"] == [f"{api.url} step_up=True"]
    assert api.bearers == [OLD, NEW, NEW]


def test_a_second_challenge_after_the_step_up_is_not_offered_again(
        api: Api, user: dict[str, list[str]], tmp_path: Path) -> None:
    api.always = True
    remote = client(api, FROM_LOGIN, tmp_path)

    with pytest.raises(StepUpRequired, match="new sign-in was not recent enough either"):
        remote.call("POST", "/secrets/project/p1/k:reveal", {})
    with pytest.raises(StepUpRequired):
        remote.call("POST", "/secrets/project/p1/k:reveal", {})

    assert len(user["signed_in"]) == 1 and api.bearers == [OLD, NEW, NEW]  # one retry, never a loop


@pytest.mark.parametrize(("source", "tty", "hint"), [
    (FROM_LOGIN, False, "sign in again with `sprongus login --oidc --step-up`"),
    (FROM_ENV, True, "unset SPRONGUS_TOKEN, then sign in again"),
    (FROM_WORKLOAD, True, "authentication older than 900 s"),
])
def test_no_offer_without_a_terminal_or_for_a_token_it_cannot_replace(
        api: Api, user: dict[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
        tty: bool, hint: str) -> None:
    monkeypatch.setattr(login, "on_terminal", lambda: tty)

    with pytest.raises(StepUpRequired, match=hint) as raised:
        client(api, source, tmp_path).call("POST", "/secrets/project/p1/k:reveal", {})

    assert raised.value.max_age == 900
    assert user["asked"] == [] and user["signed_in"] == [] and api.bearers == [OLD]


def test_a_declined_offer_keeps_the_old_token_and_says_how(api: Api, user: dict[str, list[str]], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(click, "confirm", lambda *args, **kwargs: False)

    with pytest.raises(StepUpRequired, match="sign in again with `sprongus login --oidc --step-up`"):
        client(api, FROM_LOGIN, tmp_path).call("POST", "/secrets/project/p1/k:reveal", {})

    assert user["signed_in"] == [] and api.bearers == [OLD]
