"""When the SDK raises, no frame of its own on the traceback holds a value being written, a JWT being exchanged or
the bearer token as plain text: error trackers (Sentry by default), `pytest --showlocals` and rich tracebacks record
every frame's locals by their repr. Found by an attack review: `set`'s body, `_call`'s retry partial, the
exchange's form and the transport's headers all did, on any failure."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sprongus.client import Client, SprongusError
from sprongus.domain.values import SecretValue
from tests.unit.client_fake import FakeApi, Reply, problem

TOKEN = "spr_" + "T" * 43
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.bG9jYWxzLWNhbmFyeQ"
VALUE = "sk_live_frame-locals-canary-31f"
KEY = "/v1/secrets/project/shop/notion.api_token"


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


def _sdk_locals(call: Callable[[], object]) -> str:
    """The locals of the SDK's own frames on the traceback of what `call` raised, as an error tracker prints them."""
    with pytest.raises(SprongusError) as caught:
        call()
    shown = traceback.TracebackException.from_exception(caught.value, capture_locals=True)
    frames = [f for f in shown.stack if "/sprongus/" in f.filename and "/tests/" not in f.filename]
    assert frames, "the error came with no frame of the SDK"
    return "\n".join(f"{f.name}: {f.locals}" for f in frames)


@pytest.mark.parametrize("given", ["str", "SecretValue"])
def test_a_failed_write_leaves_its_value_in_no_frame(fake: FakeApi, given: str) -> None:
    fake.always("PUT", KEY, problem(403, "forbidden"))
    client = Client(fake.url, TOKEN, retries=0)
    value: str | SecretValue = VALUE if given == "str" else SecretValue(VALUE)
    shown = _sdk_locals(lambda: client.set("project:shop", "notion.api_token", value, {"owner": "ops"}))
    assert VALUE not in shown and TOKEN not in shown, shown
    assert "Payload()" in shown  # the body is there, by its type


def test_a_failed_exchange_leaves_the_jwt_in_no_frame(fake: FakeApi, tmp_path: Path) -> None:
    jwt = tmp_path / "jwt"
    jwt.write_text(JWT)
    fake.always("POST", "/v1/auth/token", problem(503, "storage-unavailable"))
    client = Client(fake.url, token_file=jwt, retries=0)
    shown = _sdk_locals(lambda: client.reveal("project:shop", "notion.api_token"))
    assert JWT not in shown and JWT.split(".")[2] not in shown, shown


def test_a_refused_redirect_leaves_the_bearer_token_in_no_frame(fake: FakeApi) -> None:
    fake.always("POST", KEY + ":reveal", Reply(302, raw=b"", headers={"Location": "https://elsewhere.example/x"}))
    client = Client(fake.url, TOKEN, retries=0)
    shown = _sdk_locals(lambda: client.reveal("project:shop", "notion.api_token"))
    assert TOKEN not in shown and TOKEN[4:20] not in shown, shown
