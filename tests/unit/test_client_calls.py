"""What each client call sends and answers, against a scripted server: batches of 1,000, listing pages, the
domain's errors for problem answers, the cache, and no value in any repr."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sprongus.client import (
    Client,
    ConfigError,
    NotFound,
    PermissionDenied,
    Scope,
    SecretInfo,
    StepUpRequired,
    ValidationError,
)
from tests.harness import CANARY
from tests.unit.client_fake import FakeApi, Reply, Seen, problem, record

TOKEN = "spr_" + "t" * 43
BATCH = "/v1/secrets:reveal"
REVEAL = "/v1/secrets/project/shop/notion.api_token:reveal"


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


def batch_server(stored: dict[str, str]) -> Any:
    """POST /v1/secrets:reveal over `stored`, with the API's 1,000 limit."""
    def answer(seen: Seen) -> Reply:
        body = seen.json()
        if "keys" in body:
            assert len(body["keys"]) <= 1000
            names = [k for k in body["keys"] if k in stored]
        else:
            names = sorted(k for k in stored if k.startswith(body.get("prefix", "")))
            if len(names) > 1000:
                return Reply(422, {"type": "urn:sprongus:problem:validation", "title": "Invalid request",
                                   "status": 422, "detail": "prefix: matches more than 1000 secrets",
                                   "errors": {"prefix": ["matches more than 1000 secrets"]}})
        return Reply(200, {"items": [{"keyName": k, "value": stored[k], "version": 1} for k in names],
                           "missing": [k for k in body.get("keys", []) if k not in stored]})
    return answer


def list_server(stored: dict[str, str]) -> Any:
    def answer(seen: Seen) -> Reply:
        names = sorted(k for k in stored if k.startswith(seen.query.get("prefix", "")))
        start = int(seen.query.get("cursor", "0"))
        end = start + int(seen.query["limit"])
        return Reply(200, {"items": [record("project:shop", k) for k in names[start:end]],
                           "nextCursor": str(end) if end < len(names) else None})
    return answer


def test_reveal_many_asks_once_per_1000_keys(fake: FakeApi) -> None:
    stored = {f"k.n{i:04d}": f"{CANARY}-{i}" for i in range(2400)}
    fake.always("POST", BATCH, batch_server(stored))

    values = Client(fake.url, TOKEN).reveal_many("project:shop", keys=[*stored, "k.absent", "k.n0001"])

    assert values == stored  # the absent key is left out; a duplicate counts once
    sent = [s.json() for s in fake.calls("POST", BATCH)]
    assert [len(b["keys"]) for b in sent] == [1000, 1000, 401]
    assert all(b["ownerType"] == "project" and b["ownerId"] == "shop" for b in sent)


def test_reveal_many_by_prefix_is_one_request_and_over_1000_falls_back_to_names(fake: FakeApi) -> None:
    stored = {f"big.k{i:04d}": "v" for i in range(1200)} | {"small.a": "1", "small.b": "2"}
    fake.always("POST", BATCH, batch_server(stored))
    fake.always("GET", "/v1/secrets", list_server(stored))
    client = Client(fake.url, TOKEN)

    assert client.reveal_many(Scope.project("shop"), prefix="small.") == {"small.a": "1", "small.b": "2"}
    assert len(fake.calls()) == 1 and fake.calls()[0].json() == {"ownerType": "project", "ownerId": "shop",
                                                                 "prefix": "small."}
    assert len(client.reveal_many("project:shop", prefix="big.")) == 1200
    listed = fake.calls("GET", "/v1/secrets")
    assert [s.query.get("cursor") for s in listed] == [None, "500", "1000"]
    assert [len(s.json().get("keys", [])) for s in fake.calls("POST", BATCH)] == [0, 0, 1000, 200]


def test_list_iterates_every_page_lazily(fake: FakeApi) -> None:
    stored = {f"k{i:04d}": "v" for i in range(1100)}
    fake.always("GET", "/v1/secrets", list_server(stored))

    listing = Client(fake.url, TOKEN).list("project:shop")
    assert fake.calls() == []  # nothing asked until the iteration starts
    infos = list(listing)

    assert [i.key for i in infos] == sorted(stored)
    assert infos[0] == SecretInfo("project:shop", "k0000", 1, infos[0].created_at, infos[0].updated_at, None,
                                  {"owner": "ops"})
    assert [s.query["limit"] for s in fake.calls()] == ["500"] * 3
    assert fake.calls()[0].query == {"ownerType": "project", "ownerId": "shop", "withMeta": "true", "limit": "500"}


def test_get_is_masked_and_typed(fake: FakeApi) -> None:
    fake.always("GET", "/v1/secrets/system/-/db.password", Reply(200, record("system", "db.password", 7)))

    info = Client(fake.url, TOKEN).get("system", "db.password")

    assert (info.scope, info.key, info.version, info.meta, info.created) == ("system", "db.password", 7,
                                                                            {"owner": "ops"}, False)
    assert info.updated_at is not None and info.updated_at.isoformat() == "2026-01-02T00:00:00+00:00"


@pytest.mark.parametrize(("reply", "error", "text"), [
    (problem(404, "not-found", "no such secret, or a scope this token may not act on"), NotFound, "no such secret"),
    (problem(403, "insufficient-scope", "missing permission secrets:reveal"), PermissionDenied, "secrets:reveal"),
    (problem(401, "insufficient-user-authentication", "old",
             {"WWW-Authenticate": 'Bearer error="insufficient_user_authentication", max_age=900'}),
     StepUpRequired, "older than 900 s"),
    (Reply(422, {"type": "urn:sprongus:problem:validation", "title": "Invalid request", "status": 422,
                 "detail": "keyName: bad", "errors": {"keyName": ["bad"]}}), ValidationError, "keyName: bad"),
    (Reply(404, {"error": "<html>not here</html>"}), ConfigError, "has no sprongus API (HTTP 404)"),
    (Reply(302, None, {"Location": "https://elsewhere.example/v1/x?token=1"}), ConfigError,
     "redirect to https://elsewhere.example/v1/x; not followed"),
])
def test_problem_answers_raise_the_domains_errors(fake: FakeApi, reply: Reply, error: type[Exception],
                                                  text: str) -> None:
    fake.always("POST", REVEAL, reply)

    with pytest.raises(error, match=re.escape(text)):
        Client(fake.url, TOKEN).reveal("project:shop", "notion.api_token")

    assert len(fake.calls()) == 1


@pytest.mark.parametrize(("call", "field"), [
    (lambda c: c.reveal("project:shop", "../admin"), "key"),
    (lambda c: c.reveal("team:shop", "a"), "scope"),
    (lambda c: c.reveal_many("project:shop", prefix="a", keys=["a.b"]), "keys"),
    (lambda c: c.reveal_many("project:shop", keys="a.b"), "keys"),
    (lambda c: c.set("project:shop", "a", "x" * 70000), "value"),
    (lambda c: c.set("project:shop", "a", "v", meta={"Bad Key": 1}), "meta"),
])
def test_bad_input_is_refused_before_anything_is_sent(fake: FakeApi, call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        call(Client(fake.url, TOKEN))
    assert caught.value.field == field and "x" * 100 not in str(caught.value)
    assert fake.calls() == []


def test_the_cache_serves_reveals_for_its_ttl_and_a_write_or_clear_drops_it(fake: FakeApi) -> None:
    stored = {"notion.api_token": CANARY, "notion.workspace": "ws"}
    fake.always("POST", BATCH, batch_server(stored))
    fake.always("POST", REVEAL, Reply(200, {**record("project:shop", "notion.api_token"), "value": CANARY,
                                            "masked": False}))
    fake.always("PUT", "/v1/secrets/project/shop/notion.api_token", Reply(200, record("project:shop", "x", 2)))
    client = Client(fake.url, TOKEN, cache_ttl=60)

    assert client.reveal_many("project:shop", prefix="notion.") == stored
    assert client.reveal("project:shop", "notion.api_token") == CANARY  # from the batch, cached
    assert client.reveal_many("project:shop", prefix="notion.") == stored
    assert len(fake.calls()) == 1
    client.set("project:shop", "notion.api_token", "new")
    assert client.reveal_many("project:shop", keys=["notion.api_token", "notion.workspace"]) == stored
    assert fake.calls()[-1].json()["keys"] == ["notion.api_token"]  # only the key the write made stale
    client.clear_cache()
    client.reveal("project:shop", "notion.api_token")
    assert [s.path for s in fake.calls()] == [BATCH, "/v1/secrets/project/shop/notion.api_token", BATCH, REVEAL]
    assert CANARY not in repr(client) and CANARY not in repr(client._cache.__dict__)


def test_a_reveal_in_flight_during_the_clients_own_write_is_not_cached(fake: FakeApi) -> None:
    """The reveal reads the old value, the write lands and drops the key, then the reveal's answer arrives: it must
    not be cached, or this client serves the value it just replaced for a whole TTL."""
    stored = {"value": CANARY}
    asked, release = threading.Event(), threading.Event()

    def slow_reveal(_seen: Seen) -> Reply:
        answer = Reply(200, {**record("project:shop", "db.password"), "value": stored["value"], "masked": False})
        asked.set()
        release.wait(10)
        return answer

    def write(seen: Seen) -> Reply:
        stored["value"] = seen.json()["value"]
        return Reply(200, record("project:shop", "db.password", 2))

    fake.always("POST", "/v1/secrets/project/shop/db.password:reveal", slow_reveal)
    fake.always("PUT", "/v1/secrets/project/shop/db.password", write)
    client = Client(fake.url, TOKEN, cache_ttl=300)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(client.reveal("project:shop", "db.password")))
    reader.start()
    assert asked.wait(10)
    client.set("project:shop", "db.password", "rotated-value")
    release.set()
    reader.join(10)
    assert first == [CANARY]  # the answer it was given, from before the write
    assert client.reveal("project:shop", "db.password") == "rotated-value"  # asked again, not the stale answer


def test_without_a_cache_every_reveal_asks(fake: FakeApi) -> None:
    fake.always("POST", REVEAL, Reply(200, {**record("project:shop", "notion.api_token"), "value": CANARY,
                                            "masked": False}))
    client = Client(fake.url, TOKEN)

    client.reveal("project:shop", "notion.api_token")
    client.reveal("project:shop", "notion.api_token")

    assert len(fake.calls()) == 2
    assert fake.calls()[0].bearer == TOKEN and fake.calls()[0].json() == {}


@pytest.mark.parametrize("kwargs", [{}, {"token": TOKEN, "token_file": "/x"}, {"token": TOKEN, "retries": -1},
                                    {"token": TOKEN, "timeout": 0}, {"token": TOKEN, "cache_ttl": -1}])
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Client("http://127.0.0.1:9", **kwargs)


def test_the_repr_shows_where_and_how_never_the_token() -> None:
    client = Client("https://secrets.example.com", TOKEN, retries=5)
    assert repr(client) == ("Client('https://secrets.example.com/v1', auth=FixedToken(********), retries=5, "
                            "cache_ttl=0)")
