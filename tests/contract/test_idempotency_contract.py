"""The IdempotencyStore contract: every adapter in IDEMPOTENCY_STORE_FACTORIES runs the same suite.

A factory takes the backend's BoundModels (None for the in-memory backend) and returns an empty store.

`abandon` frees a key that is still in flight and leaves a finished answer alone; `finish` completes a key its
caller claimed and ignores one nobody claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sprongus.adapters.memory_tokens import InMemoryIdempotencyStore
from sprongus.adapters.peewee.models import BoundModels
from sprongus.adapters.peewee.tokens import PeeweeIdempotencyStore
from sprongus.ports.tokens import IDEMPOTENCY_TTL, IdempotencyRecord, IdempotencyStore, StoredResponse
from tests.contract.backends import BACKENDS, T0, backend, race


def _peewee(models: BoundModels | None) -> IdempotencyStore:
    assert models is not None
    return PeeweeIdempotencyStore(models)


IDEMPOTENCY_STORE_FACTORIES: dict[str, Callable[[BoundModels | None], IdempotencyStore]] = {
    "memory": lambda _: InMemoryIdempotencyStore(),
    "sqlite": _peewee,
    "postgres": _peewee,
}
assert list(IDEMPOTENCY_STORE_FACTORIES) == BACKENDS


@pytest.fixture(params=list(IDEMPOTENCY_STORE_FACTORIES))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[IdempotencyStore, BoundModels | None]]:
    with backend(request.param, tmp_path) as models:
        yield IDEMPOTENCY_STORE_FACTORIES[request.param](models), models


@pytest.fixture
def store(subject: tuple[IdempotencyStore, Any]) -> IdempotencyStore:
    return subject[0]


ALICE, BOB, KEY = "alice", "bob", "3f1c-retry-key"
CREATED = StoredResponse(201, '{"keyName": "db.password", "note": "ünïcödé €", "version": 3}',
                         {"ETag": '"3"', "Location": "/v1/secrets/project/p1/db.password"})
EMPTY = StoredResponse(204, "", {})


def test_begin_claims_a_free_key(store: IdempotencyStore) -> None:
    assert store.begin(ALICE, KEY, "fp-1", T0) is None


def test_a_second_begin_sees_the_first_request_in_flight(store: IdempotencyStore) -> None:
    assert store.begin(ALICE, KEY, "fp-1", T0) is None
    assert store.begin(ALICE, KEY, "fp-2", T0 + timedelta(seconds=1)) == IdempotencyRecord("fp-1", None)
    assert store.begin(ALICE, KEY, "fp-1", T0 + timedelta(minutes=5)) == IdempotencyRecord("fp-1", None)


@pytest.mark.parametrize("response", [CREATED, EMPTY], ids=["created", "empty"])
def test_finish_stores_the_response_that_later_begins_return(store: IdempotencyStore,
                                                             response: StoredResponse) -> None:
    assert store.begin(ALICE, KEY, "fp-1", T0) is None
    store.finish(ALICE, KEY, response)
    for later in (timedelta(0), timedelta(seconds=1), timedelta(hours=23)):
        got = store.begin(ALICE, KEY, "fp-other", T0 + later)
        assert got == IdempotencyRecord("fp-1", response)
        assert got is not None and got.response is not None and type(got.response.headers) is dict


def test_abandon_frees_only_its_own_key(store: IdempotencyStore) -> None:
    for who, key in ((ALICE, KEY), (ALICE, "other-key"), (BOB, KEY)):
        assert store.begin(who, key, f"fp-{who}-{key}", T0) is None
    store.abandon(ALICE, KEY)
    assert store.begin(ALICE, KEY, "fp-retry", T0 + timedelta(seconds=1)) is None
    assert store.begin(ALICE, KEY, "fp-x", T0 + timedelta(seconds=2)) == IdempotencyRecord("fp-retry", None)
    assert store.begin(ALICE, "other-key", "fp-x", T0) == IdempotencyRecord(f"fp-{ALICE}-other-key", None)
    assert store.begin(BOB, KEY, "fp-x", T0) == IdempotencyRecord(f"fp-{BOB}-{KEY}", None)


def test_a_retry_after_abandon_can_finish(store: IdempotencyStore) -> None:
    assert store.begin(ALICE, KEY, "fp-1", T0) is None
    store.abandon(ALICE, KEY)
    assert store.begin(ALICE, KEY, "fp-1", T0 + timedelta(seconds=1)) is None
    store.finish(ALICE, KEY, CREATED)
    assert store.begin(ALICE, KEY, "fp-1", T0 + timedelta(seconds=2)) == IdempotencyRecord("fp-1", CREATED)


def test_keys_are_per_subject(store: IdempotencyStore) -> None:
    assert store.begin(ALICE, KEY, "fp-alice", T0) is None
    assert store.begin(BOB, KEY, "fp-bob", T0) is None
    store.finish(ALICE, KEY, CREATED)
    assert store.begin(BOB, KEY, "fp-x", T0 + timedelta(seconds=1)) == IdempotencyRecord("fp-bob", None)
    store.finish(BOB, KEY, EMPTY)
    assert store.begin(ALICE, KEY, "fp-x", T0 + timedelta(seconds=2)) == IdempotencyRecord("fp-alice", CREATED)
    assert store.begin(BOB, KEY, "fp-x", T0 + timedelta(seconds=2)) == IdempotencyRecord("fp-bob", EMPTY)
    assert store.begin("carol", KEY, "fp-carol", T0) is None


@pytest.mark.parametrize("finished", [False, True], ids=["in-flight", "finished"])
def test_after_the_ttl_the_key_is_free_again(store: IdempotencyStore, finished: bool) -> None:
    assert store.begin(ALICE, KEY, "fp-1", T0) is None
    if finished:
        store.finish(ALICE, KEY, CREATED)
    first = IdempotencyRecord("fp-1", CREATED if finished else None)
    assert store.begin(ALICE, KEY, "fp-2", T0 + IDEMPOTENCY_TTL - timedelta(microseconds=1)) == first
    assert store.begin(ALICE, KEY, "fp-2", T0 + IDEMPOTENCY_TTL) is None  # claimed anew, the old record gone
    assert store.begin(ALICE, KEY, "fp-3", T0 + IDEMPOTENCY_TTL + timedelta(seconds=1)) == IdempotencyRecord(
        "fp-2", None)
    store.finish(ALICE, KEY, EMPTY)
    assert store.begin(ALICE, KEY, "fp-3", T0 + 2 * IDEMPOTENCY_TTL - timedelta(seconds=1)) == IdempotencyRecord(
        "fp-2", EMPTY)


def test_expiry_of_one_subjects_key_leaves_the_others(store: IdempotencyStore) -> None:
    assert store.begin(ALICE, KEY, "fp-old", T0) is None
    assert store.begin(ALICE, "young", "fp-young", T0 + timedelta(hours=12)) is None
    assert store.begin(BOB, KEY, "fp-bob", T0 + timedelta(hours=12)) is None
    later = T0 + IDEMPOTENCY_TTL + timedelta(hours=1)
    assert store.begin(ALICE, KEY, "fp-new", later) is None
    assert store.begin(ALICE, "young", "fp-x", later) == IdempotencyRecord("fp-young", None)
    assert store.begin(BOB, KEY, "fp-x", later) == IdempotencyRecord("fp-bob", None)


def test_concurrent_begins_of_one_key_claim_it_exactly_once(subject: tuple[IdempotencyStore, Any]) -> None:
    store, models = subject
    for round_ in range(3):
        key = f"contested-{round_}"
        got = race(8, lambda i, key=key: store.begin(ALICE, key, f"fp-{i}", T0), models)
        winners = [i for i, record in enumerate(got) if record is None]
        assert len(winners) == 1
        assert [r for r in got if r is not None] == [IdempotencyRecord(f"fp-{winners[0]}", None)] * 7


def test_abandon_after_finish_keeps_the_answer(store: IdempotencyStore) -> None:
    store.begin(ALICE, KEY, "fp-1", T0)
    store.finish(ALICE, KEY, CREATED)
    store.abandon(ALICE, KEY)
    assert store.begin(ALICE, KEY, "fp-1", T0 + timedelta(seconds=1)) == IdempotencyRecord("fp-1", CREATED)


def test_finish_of_an_unclaimed_key_changes_nothing(store: IdempotencyStore) -> None:
    store.finish(ALICE, KEY, CREATED)
    assert store.begin(ALICE, KEY, "fp-1", T0) is None  # still free: nothing was stored
