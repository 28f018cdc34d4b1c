"""Bundles with history (`--all-versions`, docs/design.md#bundles): the flag, the order rule, the import numbering
rule, retention, and bundles without history read as before."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from sprongus.domain.errors import IntegrityError, NotFound, ValidationError
from sprongus.domain.names import MAX_VERSION_NUMBER
from sprongus.domain.records import AuditAction
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.service.import_plan import plan_versions
from tests.harness import CANARY, Harness, make_harness, owner

P1 = Scope.project("p1")


def put(h: Harness, key: str, *values: str) -> None:
    for value in values:
        h.secrets.set(owner(), P1, key, SecretValue(value))


def reveal(h: Harness, key: str, version: int | None = None) -> str:
    view = h.secrets.get(owner(), P1, key, reveal=True, version=version)
    assert view.value is not None
    return view.value.reveal()


def numbers(h: Harness, key: str) -> list[int]:
    return [i.version for i in h.history.history(owner(), P1, key).items]


def history_bundle(h: Harness, passphrase: str | None = None) -> dict[str, Any]:
    doc = h.transfer.export(owner(), P1, bundle=True, all_versions=True,
                            passphrase=None if passphrase is None else SecretValue(passphrase)).bundle
    assert doc is not None
    return doc


@pytest.fixture
def source() -> Harness:
    h = make_harness()
    put(h, "a", f"{CANARY}-1", f"{CANARY}-2", f"{CANARY}-3")
    put(h, "b", "b1")
    return h


def test_the_numbering_rule() -> None:
    assert plan_versions(None, 0, True) == [1]  # no history: the next number, as a plain write
    assert plan_versions(None, 4, False) == [5]
    assert plan_versions([2, 3, 5], 0, True) == [2, 3, 5]  # a new secret keeps the source's numbers
    assert plan_versions([2, 3, 5], 2, True) == [3, 4, 5]  # ... unless a purged one used them: appended
    assert plan_versions([2, 3, 5], 7, False) == [8, 9, 10]  # it exists: appended in order


def test_a_bundle_with_history_lists_versions_oldest_first_and_says_so(source: Harness) -> None:
    doc = history_bundle(source)
    assert doc["history"] is True and doc["count"] == 4
    assert [(i["key"], i["version"]) for i in doc["items"]] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert CANARY not in json.dumps(doc)
    plain = source.transfer.export(owner(), P1, bundle=True).bundle
    assert plain is not None and "history" not in plain  # the document earlier releases read, unchanged


def test_all_versions_needs_a_bundle(source: Harness) -> None:
    with pytest.raises(ValidationError) as err:
        source.transfer.export(owner(), P1, all_versions=True)
    assert err.value.field == "allVersions"


@pytest.mark.parametrize("passphrase", [None, "correct horse"])
def test_history_round_trips_into_an_empty_vault_under_the_same_numbers(source: Harness,
                                                                         passphrase: str | None) -> None:
    doc = history_bundle(source, passphrase)
    target = make_harness(source.versions) if passphrase is None else make_harness()
    report = target.transfer.import_(owner(), bundle=doc,
                                     passphrase=None if passphrase is None else SecretValue(passphrase))
    assert report.added == [("project:p1", "a"), ("project:p1", "b")]
    assert numbers(target, "a") == [3, 2, 1] and numbers(target, "b") == [1]
    assert [reveal(target, "a", n) for n in (1, 2, 3)] == [f"{CANARY}-{n}" for n in (1, 2, 3)]
    assert all(i.created_by == "owner" for i in target.history.history(owner(), P1, "a").items)
    assert target.rotation.verify(owner()).ok


def test_history_is_appended_to_an_existing_or_purged_secret(source: Harness) -> None:
    doc = history_bundle(source)
    target = make_harness(source.versions)
    put(target, "a", "mine")
    put(target, "b", "b-old", "b-older")
    target.history.purge(owner(), P1, "b")  # b used 1 and 2: a new b starts after them
    target.transfer.import_(owner(), bundle=doc)
    assert numbers(target, "a") == [4, 3, 2, 1]
    assert (reveal(target, "a", 1), reveal(target, "a")) == ("mine", f"{CANARY}-3")
    assert numbers(target, "b") == [3] and reveal(target, "b") == "b1"


def test_a_deleted_secret_comes_back_with_the_imported_versions_after_its_own(source: Harness) -> None:
    doc = history_bundle(source)
    target = make_harness(source.versions)
    put(target, "a", "mine")
    target.secrets.unset(owner(), P1, "a")
    report = target.transfer.import_(owner(), bundle=doc)
    assert ("project:p1", "a") in report.added  # it was not visible: added again, its own version kept
    assert numbers(target, "a") == [4, 3, 2, 1] and reveal(target, "a", 1) == "mine"


def test_retention_applies_to_imported_history(source: Harness) -> None:
    from dataclasses import replace

    from sprongus.service.transfer import TransferOps

    doc = history_bundle(source)
    target = make_harness(source.versions)
    narrow = TransferOps(replace(target.deps, max_versions=2))
    narrow.import_(owner(), bundle=doc)
    assert numbers(target, "a") == [3, 2]
    destroyed = [(e.key_name, e.version) for e in target.audit.events if e.action == AuditAction.DESTROY]
    assert destroyed == [("a", 1)]
    with pytest.raises(NotFound):
        target.secrets.get(owner(), P1, "a", version=1)


def test_history_rules_are_checked_and_the_mac_covers_them(source: Harness) -> None:
    doc = history_bundle(source)
    target = make_harness(source.versions)
    swapped = copy.deepcopy(doc)
    swapped["items"][0], swapped["items"][1] = swapped["items"][1], swapped["items"][0]
    with pytest.raises(ValidationError) as err:  # versions of one secret must increase
        target.transfer.import_(owner(), bundle=swapped)
    assert err.value.field == "bundle.items[1].version"
    bad_flag = {**copy.deepcopy(doc), "history": "yes"}
    with pytest.raises(ValidationError) as err:
        target.transfer.import_(owner(), bundle=bad_flag)
    assert err.value.field == "bundle.history"
    stripped = copy.deepcopy(doc)
    del stripped["history"]  # without the flag, a repeated scope and key is refused as before
    with pytest.raises(ValidationError):
        target.transfer.import_(owner(), bundle=stripped)
    dropped = copy.deepcopy(doc)
    del dropped["items"][1]
    dropped["count"] = 3
    with pytest.raises(IntegrityError):  # an old version dropped: the document MAC fails
        target.transfer.import_(owner(), bundle=dropped)
    assert target.uow.repository.rows == {} and target.uow.repository.kept == {}


def test_a_bundle_without_history_still_imports_as_before(source: Harness) -> None:
    doc = source.transfer.export(owner(), P1, bundle=True).bundle
    target = make_harness(source.versions)
    put(target, "a", "mine")
    report = target.transfer.import_(owner(), bundle=doc)
    assert report.updated == [("project:p1", "a")] and report.added == [("project:p1", "b")]
    assert numbers(target, "a") == [2, 1] and numbers(target, "b") == [1]
    assert reveal(target, "a") == f"{CANARY}-3"


def test_a_deleted_secret_is_not_exported(source: Harness) -> None:
    source.secrets.unset(owner(), P1, "b")
    result = source.transfer.export(owner(), P1, bundle=True, all_versions=True)
    assert result.bundle is not None and {i["key"] for i in result.bundle["items"]} == {"a"}
    assert [v.key for v in result.items] == ["a"]
    assert [v.key for v in source.transfer.export(owner(), P1).items] == ["a"]


def test_a_secret_at_the_last_version_number_refuses_a_new_version_by_name_and_keeps_its_value() -> None:
    """A bundle's history may bring any number up to 2^31-1, the column's last: the next write was an integer
    overflow in Postgres (a database error, 503), not a rule a caller can read."""
    h = make_harness()
    put(h, "db.password", CANARY)
    rows = h.uow.repository.rows[P1]
    rows["db.password"] = replace(rows["db.password"], version=MAX_VERSION_NUMBER)
    with pytest.raises(ValidationError, match="every version number") as refused:
        put(h, "db.password", "next")
    assert refused.value.field == "version" and "next" not in str(refused.value)
    assert h.uow.repository.rows[P1]["db.password"].version == MAX_VERSION_NUMBER


def test_a_write_between_the_pages_two_reads_does_not_put_a_version_in_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The current rows and their kept versions are two reads: a write in between kept the row read as a version
    too, and the bundle held version 2 twice, which no import takes (found when the backup was restored)."""
    from sprongus.service.transfer import TransferOps

    h = make_harness()
    put(h, "a", CANARY + "1", CANARY + "2")
    original = TransferOps._with_history

    def another_writer_first(self: TransferOps, principal: Any, rows: Any) -> Any:
        put(h, "a", CANARY + "3")
        return original(self, principal, rows)
    monkeypatch.setattr(TransferOps, "_with_history", another_writer_first)
    doc = history_bundle(h)
    assert [item["version"] for item in doc["items"]] == [1, 2]
    target = make_harness(h.versions)
    target.transfer.import_(owner(), bundle=doc)
    assert reveal(target, "a") == CANARY + "2" and numbers(target, "a") == [2, 1]
