"""The client against a broken or hostile server's answers: bodies without end, problem documents of the wrong
shape, nesting that exhausts the parser, numbers of a thousand digits, text that forges log lines, a listing whose
cursor comes back. Whatever arrives, the caller gets a SprongusError in bounded time and memory, and the server's
text only as one short line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sprongus.adapters import problem_types
from sprongus.client import Client, RemoteUnavailable, SprongusError, ValidationError
from sprongus.client import transport as client_transport
from sprongus.client.transport import Answer
from tests.harness import CANARY
from tests.unit.client_fake import FakeApi, Reply, problem, record

REVEAL = "/v1/secrets/project/shop/notion.api_token:reveal"
TOKEN = "spr_" + "k" * 43
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


def test_an_answer_body_beyond_the_limit_is_not_read_into_memory(fake: FakeApi, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    monkeypatch.setattr(client_transport, "MAX_ANSWER", 1024)
    fake.always("POST", REVEAL, Reply(200, raw=b'{"value": "' + b"x" * 4096 + b'"}'))
    with pytest.raises(RemoteUnavailable, match=r"answered 200 with a body over"):
        Client(fake.url, TOKEN, retries=0).reveal("project:shop", "notion.api_token")


def test_an_error_body_beyond_the_limit_is_read_by_its_status(fake: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_transport, "MAX_PROBLEM", 1024)
    huge = problem(422, "validation", "x" * 4096)
    fake.always("POST", REVEAL, Reply(422, raw=b'{"type": "urn:sprongus:problem:validation", "detail": "' + b"y" * 4096
                                      + b'"}', headers=huge.headers))
    with pytest.raises(ValidationError) as caught:
        Client(fake.url, TOKEN, retries=0).reveal("project:shop", "notion.api_token")
    assert "y" * 100 not in str(caught.value)  # the document was not read: the status's own error


@pytest.mark.parametrize("status", [200, 422])
def test_a_body_dripped_a_byte_at_a_time_is_an_unavailable_api_within_the_timeout(fake: FakeApi, status: int) -> None:
    """Each byte came within the socket's timeout, so the client waited for as long as the server liked (here the
    body would take 40 s); the timeout now bounds the body as a whole too."""
    import time

    fake.always("POST", REVEAL, Reply(status, raw=b'{"value": "' + b"x" * 200 + b'"}', drip=0.2))
    started = time.monotonic()
    with pytest.raises(RemoteUnavailable if status == 200 else SprongusError):
        Client(fake.url, TOKEN, timeout=1, retries=0).reveal("project:shop", "notion.api_token")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status", [200, 503])
def test_nesting_that_exhausts_the_parser_is_an_unavailable_api(fake: FakeApi, status: int) -> None:
    fake.always("POST", REVEAL, Reply(status, raw=DEEP, headers={"Content-Type": "application/problem+json"}))
    with pytest.raises(RemoteUnavailable):
        Client(fake.url, TOKEN, retries=0).reveal("project:shop", "notion.api_token")


@pytest.mark.parametrize("errors", [["a", "b"], "not a mapping", {"value": [1, 2]}, {"value": {"deep": ["x"]}},
                                    {"": None}, {7: "seven"}])
def test_a_validation_problem_of_the_wrong_shape_is_still_a_validation_error(fake: FakeApi, errors: object) -> None:
    body = {"type": "urn:sprongus:problem:validation", "status": 422, "detail": "bad", "errors": errors}
    fake.always("POST", REVEAL, Reply(422, body, {"Content-Type": "application/problem+json"}))
    with pytest.raises(ValidationError):
        Client(fake.url, TOKEN, retries=0).reveal("project:shop", "notion.api_token")


@pytest.mark.parametrize(("status", "kind", "header"), [
    (401, "insufficient-user-authentication", ("WWW-Authenticate", 'Bearer error="x", max_age=' + "9" * 5000)),
    (429, "rate-limited", ("RateLimit-Policy", '"reveal";q=' + "9" * 5000 + ";w=" + "9" * 5000)),
])
def test_numbers_of_a_thousand_digits_in_headers_are_capped_not_raised(fake: FakeApi, status: int, kind: str,
                                                                       header: tuple[str, str]) -> None:
    fake.always("POST", REVEAL, problem(status, kind, headers=dict([header])))
    with pytest.raises(SprongusError):
        Client(fake.url, TOKEN, retries=0, max_retry_wait=0).reveal("project:shop", "notion.api_token")


def test_the_servers_text_is_one_short_line_in_errors_and_in_the_retry_log(fake: FakeApi,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    forged = "down\n2026-01-01 CRITICAL sprongus.client: token spr_FORGED leaked\r\x1b[2J" + "z" * 1_000_000
    fake.then("POST", REVEAL, problem(503, "storage-unavailable", forged))
    fake.always("POST", REVEAL, problem(404, "not-found", forged))
    caplog.set_level(logging.INFO, logger="sprongus.client")
    with pytest.raises(SprongusError) as caught:
        Client(fake.url, TOKEN, retries=1, max_retry_wait=0).reveal("project:shop", "notion.api_token")
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message and "\x1b" not in message
    assert len(message) < problem_types.MAX_DETAIL + 100
    for line in caplog.messages:
        assert "\n" not in line and len(line) < problem_types.MAX_DETAIL + 200


def test_a_listing_whose_cursor_comes_back_stops(fake: FakeApi) -> None:
    page = {"items": [record("project:shop", "a.key")], "nextCursor": "c1"}
    fake.always("GET", "/v1/secrets", Reply(200, page))
    with pytest.raises(RemoteUnavailable, match="cursor"):
        list(Client(fake.url, TOKEN, retries=0).list("project:shop"))
    assert len(fake.calls("GET", "/v1/secrets")) == 2  # the first page, then the page that repeated its cursor


def test_a_listing_cursor_that_is_no_text_is_refused(fake: FakeApi) -> None:
    fake.always("GET", "/v1/secrets", Reply(200, {"items": [], "nextCursor": {"evil": True}}))
    with pytest.raises(RemoteUnavailable):
        list(Client(fake.url, TOKEN, retries=0).list("project:shop"))


def test_an_answer_never_prints_its_values(fake: FakeApi) -> None:
    """A traceback that records its frames' locals (an error tracker's) holds `answer`: its repr shows no body."""
    assert CANARY not in repr(Answer(200, {"items": [{"keyName": "k", "value": CANARY}]}))
    batch = {"items": [{"keyName": "notion.api_token", "value": CANARY, "version": 1}, {"keyName": "x"}],
             "missing": []}
    fake.always("POST", "/v1/secrets:reveal", Reply(200, batch))
    with pytest.raises(RemoteUnavailable) as caught:
        Client(fake.url, TOKEN, retries=0).reveal_many("project:shop", keys=["notion.api_token", "x"])
    frames = caught.tb
    while frames is not None:
        assert CANARY not in repr(frames.tb_frame.f_locals.get("answer", ""))
        frames = frames.tb_next


def test_the_clis_remote_client_reads_answers_the_same_way(fake: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--remote` speaks through adapters/http_client.ApiClient: the same limits and errors."""
    from sprongus.adapters import http_client
    from sprongus.domain.errors import ConfigError

    monkeypatch.setattr(http_client, "MAX_ANSWER", 1024)
    path = "/secrets/project/shop/notion.api_token"
    fake.then("GET", "/v1" + path, Reply(200, raw=b'{"value": "' + b"x" * 4096 + b'"}'))
    fake.then("GET", "/v1" + path, Reply(200, raw=DEEP[:1000]))
    fake.then("GET", "/v1" + path, Reply(503, raw=DEEP, headers={"Content-Type": "application/problem+json"}))
    api = http_client.ApiClient(fake.url, TOKEN)
    for _ in range(3):
        with pytest.raises(RemoteUnavailable):
            api.call("GET", path)
    with pytest.raises(ConfigError) as caught:
        http_client.ApiClient(fake.url, "spr_CANARY\nTOKEN").call("GET", path)
    assert "CANARY" not in str(caught.value) and caught.value.__context__ is None


def test_the_remote_clis_transport_errors_repeat_no_server_text() -> None:
    """http.client's BadStatusLine quotes the server's status line: 64 KiB, escape codes and a forged line."""
    import socket
    import threading

    from sprongus.adapters import http_client

    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"XTTP/9.9\x1b]0;pwned\x07 200 OK" + b"A" * 60000 + b"\rerror: forged line\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        with pytest.raises(RemoteUnavailable) as caught:
            http_client.ApiClient(f"http://127.0.0.1:{listener.getsockname()[1]}", TOKEN).call("GET", "/secrets")
    finally:
        listener.close()
    message = str(caught.value)
    assert "\x1b" not in message and "forged" not in message and len(message) < 200, message


def test_the_remote_clis_listing_stops_when_its_cursor_does_not_move_on(fake: FakeApi) -> None:
    from sprongus.adapters.http_client import ApiClient, HttpSecretsApi
    from sprongus.domain.scope import Scope
    from sprongus.service.pages import api_views

    fake.always("GET", "/v1/secrets", Reply(200, {"items": [record("project:shop", "a.key")], "nextCursor": "k1:a"}))
    with pytest.raises(RemoteUnavailable, match="cursor"):
        list(api_views(HttpSecretsApi(ApiClient(fake.url, TOKEN)), Scope.parse("project:shop")))
    assert len(fake.calls("GET", "/v1/secrets")) == 2
