"""The client under attack: a hostile or broken server's Retry-After, a 503 that never ends, redirects towards
another host, odd answer bodies, a swapped token file, and many threads on one cache. Whatever happens, the
caller gets the product's errors (SprongusError), in bounded time, and no value or token in any message, repr or
log line."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sprongus.client import Client, ConfigError, RateLimited, RemoteUnavailable, SprongusError
from tests.harness import CANARY
from tests.unit.client_fake import FakeApi, Reply, problem, record

REVEAL = "/v1/secrets/project/shop/notion.api_token:reveal"
BATCH = "/v1/secrets:reveal"
TOKEN = "spr_" + "k" * 43
REVEALED = Reply(200, {**record("project:shop", "notion.api_token"), "value": CANARY, "masked": False})


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


def _reveal(client: Client) -> str:
    return client.reveal("project:shop", "notion.api_token")


# Retry-After from a hostile server ------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("header", ["\u00b2", "9" * 5000, "9" * 400])
def test_a_retry_after_that_is_not_plain_digits_is_still_a_sprongus_error(fake: FakeApi, status: int,
                                                                           header: str) -> None:
    # `²` passes str.isdigit() and 5,000 digits exceed int()'s limit: both used to escape as a bare ValueError,
    # past every `except SprongusError` of the application.
    fake.always("POST", REVEAL, problem(status, "rate-limited" if status == 429 else "storage-unavailable",
                                       headers={"Retry-After": header}))
    client = Client(fake.url, TOKEN, retries=1, max_retry_wait=1)

    started = time.monotonic()
    with pytest.raises(SprongusError) as caught:
        _reveal(client)

    assert time.monotonic() - started < 3
    if status == 429 and header.startswith("9"):  # far longer than a call may wait: said at once, with the delay
        assert isinstance(caught.value, RateLimited) and caught.value.retry_after >= 10**9
        assert len(fake.calls("POST", REVEAL)) == 1


@pytest.mark.parametrize("header", ["-5", "Wed, 21 Oct 2099 07:28:00 GMT", "1.5", ""])
def test_a_negative_date_or_fractional_retry_after_falls_back_to_the_bounded_back_off(fake: FakeApi,
                                                                                      header: str) -> None:
    fake.always("POST", REVEAL, problem(429, "rate-limited", headers={"Retry-After": header}))
    client = Client(fake.url, TOKEN, retries=2)

    started = time.monotonic()
    with pytest.raises(RateLimited):
        _reveal(client)

    assert time.monotonic() - started < 0.5 * 3 * 1.25 + 1  # 0.5 s then 1 s, plus jitter: never a 2099 wait
    assert len(fake.calls("POST", REVEAL)) == 3


def test_a_server_answering_503_forever_costs_a_bounded_time(fake: FakeApi) -> None:
    fake.always("POST", REVEAL, problem(503, "storage-unavailable", headers={"Retry-After": "1"}))
    client = Client(fake.url, TOKEN, retries=3, max_retry_wait=1)

    started = time.monotonic()
    with pytest.raises(SprongusError):
        _reveal(client)

    assert time.monotonic() - started < 3 * 1 + 2  # retries x max_retry_wait, plus the requests themselves
    assert len(fake.calls("POST", REVEAL)) == 4


# Redirects ------------------------------------------------------------------------------------------------------

class _Thief(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def _any(self) -> None:
        _Thief.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_refused_and_the_token_never_goes_there(fake: FakeApi, code: int) -> None:
    thief = ThreadingHTTPServer(("127.0.0.1", 0), _Thief)
    threading.Thread(target=thief.serve_forever, args=(0.05,), daemon=True).start()
    _Thief.seen = []
    try:
        target = f"http://127.0.0.1:{thief.server_address[1]}/collect?token={TOKEN}"
        fake.always("POST", REVEAL, Reply(code, None, {"Location": target}))
        with pytest.raises(ConfigError) as caught:
            _reveal(Client(fake.url, TOKEN))
    finally:
        thief.shutdown()
        thief.server_close()
    assert _Thief.seen == []
    assert TOKEN not in str(caught.value) and "token=" not in str(caught.value)
    assert len(fake.calls("POST", REVEAL)) == 1  # a setting to fix: not retried


# Nothing leaks --------------------------------------------------------------------------------------------------

def test_no_value_or_token_in_reprs_errors_or_the_clients_log(fake: FakeApi, caplog: pytest.LogCaptureFixture) -> None:
    fake.then("POST", REVEAL, problem(503, "storage-unavailable", headers={"Retry-After": "0"}))
    fake.always("POST", REVEAL, REVEALED)
    fake.always("POST", BATCH, Reply(200, {"items": [{"keyName": "a", "value": CANARY}, "junk"]}))
    client = Client(fake.url, TOKEN, cache_ttl=60)
    caplog.set_level(logging.DEBUG, logger="sprongus")

    assert _reveal(client) == CANARY
    with pytest.raises(RemoteUnavailable) as caught:
        client.reveal_many("project:shop", keys=["a"])

    shown = [repr(client), str(client), repr(client._cache), str(caught.value), repr(caught.value), caplog.text]
    for text in shown:
        assert CANARY not in text and TOKEN not in text


@pytest.mark.parametrize("url", [f"https://api.example.com/?key={CANARY}", f"https://api.example.com/#{CANARY}"])
def test_a_base_url_with_a_query_or_fragment_is_refused_without_repeating_it(url: str) -> None:
    # It used to become the base (`https://api.example.com/?key=.../v1`), shown by repr() and every error.
    with pytest.raises(ConfigError) as caught:
        Client(url, TOKEN)
    assert CANARY not in str(caught.value)


def test_a_value_that_is_not_text_is_the_servers_fault_not_the_callers(fake: FakeApi) -> None:
    # It used to raise ValidationError("value: must be UTF-8 text ..."), as if the caller had sent a bad value.
    fake.always("POST", REVEAL, Reply(200, {**record("project:shop", "notion.api_token"), "value": 12345}))
    with pytest.raises(RemoteUnavailable, match="unexpected body"):
        _reveal(Client(fake.url, TOKEN))


# The token file -------------------------------------------------------------------------------------------------

def test_a_token_file_swapped_for_a_huge_file_or_a_directory_is_a_config_error(fake: FakeApi, tmp_path: Path) -> None:
    huge = tmp_path / "huge"
    huge.write_bytes(b"a." * 2_000_000)
    link = tmp_path / "token"
    link.symlink_to(huge)
    with pytest.raises(ConfigError, match="larger than"):
        _reveal(Client(fake.url, token_file=link))
    with pytest.raises(ConfigError, match="cannot read"):
        _reveal(Client(fake.url, token_file=tmp_path))
    assert fake.calls() == []


def test_a_token_file_swapped_for_a_fifo_fails_rather_than_hangs(fake: FakeApi, tmp_path: Path) -> None:
    # Found by a review: read_jwt_file (adapters/oidc_device.py) opened whatever was at the path; a FIFO blocked every
    # call of the client, under its lock, until something wrote to it. It is refused now as not a regular file.
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            _reveal(Client(fake.url, token_file=fifo))
        except BaseException as exc:  # whatever it is, it ended the call
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(3)
    hung = worker.is_alive()
    if hung:  # free the thread: a writer opens the FIFO and closes it at once
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
    assert not hung
    assert outcome and isinstance(outcome[0], ConfigError)


# The cache ------------------------------------------------------------------------------------------------------

def test_many_threads_on_one_cache_get_right_values_and_one_reveal_per_key_at_most_per_thread(fake: FakeApi) -> None:
    keys = [f"k{i}" for i in range(20)]
    for key in keys:
        fake.always("POST", f"/v1/secrets/project/shop/{key}:reveal",
                    Reply(200, {**record("project:shop", key), "value": f"{CANARY}-{key}", "masked": False}))
    client = Client(fake.url, TOKEN, cache_ttl=60)
    wrong: list[str] = []

    def work() -> None:
        for _ in range(5):
            for key in keys:
                if client.reveal("project:shop", key) != f"{CANARY}-{key}":
                    wrong.append(key)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert wrong == []
    assert len(fake.calls("POST")) <= len(keys) * len(threads)  # the cache served the repeats


def test_a_cache_serves_a_value_changed_through_another_client_until_its_ttl_as_documented(fake: FakeApi) -> None:
    fake.then("POST", REVEAL, REVEALED)
    fake.always("POST", REVEAL, Reply(200, {**record("project:shop", "notion.api_token"), "value": "new",
                                           "masked": False}))
    client = Client(fake.url, TOKEN, cache_ttl=60)
    assert _reveal(client) == CANARY
    assert _reveal(client) == CANARY  # changed elsewhere: seen up to TTL seconds late
    client.clear_cache()
    assert _reveal(client) == "new"
    doc = (Path(__file__).parents[2] / "docs" / "sdk.md").read_text()
    assert "cache_ttl" in doc and "late" in doc
