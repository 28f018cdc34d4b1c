"""set / get / unset / list on the in-memory harness (docs/design.md: names and limits, service rules)."""

from __future__ import annotations

import threading

import pytest

from sprongus.domain.errors import Conflict, NotFound, ValidationError
from sprongus.domain.records import Outcome
from sprongus.domain.scope import Scope
from sprongus.domain.values import MASK, SecretValue
from sprongus.service.secrets import encode_cursor
from tests.harness import Harness, owner

ME = Scope.user("alice")


def put(h: Harness, key: str, value: str = "v", meta: object = None, scope: Scope = ME) -> int:
    return h.secrets.set(owner(), scope, key, SecretValue(value), meta).view.version


def reveal(h: Harness, key: str, scope: Scope = ME) -> str:
    view = h.secrets.get(owner(), scope, key, reveal=True)
    assert view.value is not None
    return view.value.reveal()


def snapshot(h: Harness) -> dict[Scope, dict[str, object]]:
    return {scope: dict(rows) for scope, rows in h.uow.repository.rows.items()}


def test_versions_start_at_one_and_grow_on_every_set_even_unchanged(harness: Harness) -> None:
    first = harness.secrets.set(owner(), ME, "api.token", SecretValue("same"))
    assert first.created and first.view.version == 1
    assert first.view.last_rotated_at is None
    for expected in (2, 3, 4):
        result = harness.secrets.set(owner(), ME, "api.token", SecretValue("same"))
        assert not result.created
        assert result.view.version == expected
    view = harness.secrets.get(owner(), ME, "api.token")
    assert view.version == 4 and view.last_rotated_at is None


def test_get_is_masked_unless_revealed(harness: Harness) -> None:
    put(harness, "db.password", "hunter2-long")
    masked = harness.secrets.get(owner(), ME, "db.password").to_dict()
    assert masked["value"] == MASK == "********"
    assert masked["masked"] is True
    assert "hunter2-long" not in repr(masked)
    shown = harness.secrets.get(owner(), ME, "db.password", reveal=True).to_dict()
    assert shown["value"] == "hunter2-long" and shown["masked"] is False


def test_mask_does_not_depend_on_value_length(harness: Harness) -> None:
    put(harness, "short", "ab")
    put(harness, "long", "x" * 5000)
    assert harness.secrets.get(owner(), ME, "short").to_dict()["value"] == \
        harness.secrets.get(owner(), ME, "long").to_dict()["value"]


@pytest.mark.parametrize("value", ["", "x" * 65536, "é" * 32768, "multi\nline\n\n"])
def test_values_up_to_the_limit_round_trip(harness: Harness, value: str) -> None:
    put(harness, "k", value)
    assert reveal(harness, "k") == value


@pytest.mark.parametrize("value", ["x" * 65537, "é" * 32768 + "a"])
def test_values_over_65536_bytes_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError) as err:
        SecretValue(value)
    assert err.value.field == "value"


def test_meta_kept_when_not_given_and_replaced_when_given(harness: Harness) -> None:
    put(harness, "k", meta={"provider": "notion", "env": "prod"})
    put(harness, "k", "v2")
    assert harness.secrets.get(owner(), ME, "k").meta == {"provider": "notion", "env": "prod"}
    put(harness, "k", "v3", meta={"provider": "gdocs"})
    assert harness.secrets.get(owner(), ME, "k").meta == {"provider": "gdocs"}
    put(harness, "k", "v4", meta={})
    assert harness.secrets.get(owner(), ME, "k").meta == {}


def test_unset_then_get_is_not_found_and_unset_of_missing_is_not_found(harness: Harness) -> None:
    put(harness, "k")
    harness.secrets.unset(owner(), ME, "k")
    with pytest.raises(NotFound):
        harness.secrets.get(owner(), ME, "k")
    with pytest.raises(NotFound):
        harness.secrets.unset(owner(), ME, "k")
    with pytest.raises(NotFound):
        harness.secrets.get(owner(), ME, "never.set", reveal=True)


def test_expected_version_mismatch_is_a_conflict_naming_the_current_version(harness: Harness) -> None:
    put(harness, "k", "one")
    put(harness, "k", "two")
    with pytest.raises(Conflict) as err:
        harness.secrets.set(owner(), ME, "k", SecretValue("three"), expected_version=1)
    assert err.value.current_version == 2
    assert reveal(harness, "k") == "two"
    assert harness.secrets.set(owner(), ME, "k", SecretValue("three"), expected_version=2).view.version == 3
    with pytest.raises(Conflict) as err:
        harness.secrets.set(owner(), ME, "new", SecretValue("x"), expected_version=1)
    assert err.value.current_version is None


@pytest.mark.parametrize(("key", "meta", "field"), [
    ("1starts.with.digit", None, "key"),
    ("has space", None, "key"),
    ("trailing.", None, "key"),
    ("a" * 129, None, "key"),
    ("ok", {"Bad-Key": "x"}, "meta"),
    ("ok", {"tag": "x" * 257}, "meta"),
    ("ok", {"tag": ["list"]}, "meta"),
    ("ok", {"tag": float("nan")}, "meta"),
    ("ok", {f"k{i}": "x" * 200 for i in range(25)}, "meta"),
    ("ok", ["not", "an", "object"], "meta"),
])
def test_invalid_input_is_rejected_before_anything_is_written(harness: Harness, key: str, meta: object,
                                                              field: str) -> None:
    put(harness, "ok", "original", meta={"keep": "me"})
    before, events = snapshot(harness), len(harness.audit.events)
    with pytest.raises(ValidationError) as err:
        harness.secrets.set(owner(), ME, key, SecretValue("new"), meta)
    assert err.value.field == field
    assert snapshot(harness) == before
    new_events = harness.audit.events[events:]
    assert [e.outcome for e in new_events] == [Outcome.INVALID]
    assert reveal(harness, "ok") == "original"


def test_invalid_scope_text_is_rejected_with_the_field() -> None:
    for text in ("user:", "user", "team:x", "project:-bad", "user:" + "a" * 129, "system:x"):
        with pytest.raises(ValidationError) as err:
            Scope.parse(text)
        assert err.value.field == "scope"


def test_scopes_are_separate_namespaces(harness: Harness) -> None:
    put(harness, "k", "user-value", scope=Scope.user("x"))
    put(harness, "k", "project-value", scope=Scope.project("x"))
    put(harness, "k", "system-value", scope=Scope.system())
    assert reveal(harness, "k", Scope.user("x")) == "user-value"
    assert reveal(harness, "k", Scope.project("x")) == "project-value"
    assert reveal(harness, "k", Scope.system()) == "system-value"


def test_concurrent_sets_of_one_key_lose_no_update() -> None:
    from tests.harness import make_harness

    h, threads_n, per_thread = make_harness(), 8, 25
    versions: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(per_thread):
            v = h.secrets.set(owner(), ME, "hot.key", SecretValue(f"t{n}-{i}")).view.version
            with lock:
                versions.append(v)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = threads_n * per_thread
    assert sorted(versions) == list(range(1, total + 1))
    assert h.secrets.get(owner(), ME, "hot.key").version == total


def test_list_filters_on_prefix_and_never_shows_values(harness: Harness) -> None:
    for key in ("notion.api_token", "notion.workspace", "notionx", "gdocs.key", "OPENAI_API_KEY"):
        put(harness, key, "secret-" + key)
    page = harness.secrets.list(owner(), ME, prefix="notion.")
    assert [v.key for v in page.items] == ["notion.api_token", "notion.workspace"]
    assert page.next_cursor is None
    assert all(v.masked and v.to_dict()["value"] == MASK for v in page.items)
    everything = harness.secrets.list(owner(), ME)
    assert [v.key for v in everything.items] == sorted(["notion.api_token", "notion.workspace", "notionx",
                                                        "gdocs.key", "OPENAI_API_KEY"])
    assert "secret-" not in repr(everything)


def test_list_with_and_without_meta(harness: Harness) -> None:
    put(harness, "k", meta={"provider": "notion"})
    assert harness.secrets.list(owner(), ME, with_meta=True).items[0].meta == {"provider": "notion"}
    assert harness.secrets.list(owner(), ME, with_meta=False).items[0].meta == {}


def test_keyset_pagination_visits_every_key_once_in_order(harness: Harness) -> None:
    keys = [f"k{i:04d}" for i in range(1000)]
    for key in keys:
        put(harness, key)
    put(harness, "zz", scope=Scope.user("bob"))  # another scope never leaks into the pages
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        page = harness.secrets.list(owner(), ME, cursor=cursor, limit=7)
        assert 1 <= len(page.items) <= 7
        seen += [v.key for v in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == keys
    assert pages == 143  # ceil(1000 / 7): the last page has 6 items and no cursor


def test_pagination_survives_deletion_of_the_cursor_key(harness: Harness) -> None:
    for key in ("a", "b", "c", "d"):
        put(harness, key)
    first = harness.secrets.list(owner(), ME, limit=2)
    harness.secrets.unset(owner(), ME, "b")
    second = harness.secrets.list(owner(), ME, limit=2, cursor=first.next_cursor)
    assert [v.key for v in second.items] == ["c", "d"]


@pytest.mark.parametrize("cursor", ["garbage!!", "a2V5", encode_cursor("ok").upper(), "azE6MWJhZA"])
def test_bad_cursor_is_a_validation_error(harness: Harness, cursor: str) -> None:
    with pytest.raises(ValidationError) as err:
        harness.secrets.list(owner(), ME, cursor=cursor)
    assert err.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, 501, -1, True])
def test_limit_outside_1_to_500_is_rejected(harness: Harness, limit: int) -> None:
    with pytest.raises(ValidationError) as err:
        harness.secrets.list(owner(), ME, limit=limit)
    assert err.value.field == "limit"


def test_limit_500_is_accepted(harness: Harness) -> None:
    put(harness, "k")
    assert len(harness.secrets.list(owner(), ME, limit=500).items) == 1
