"""Import, export and encrypted bundles (docs/design.md#bundles)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from sprongus.domain.errors import IntegrityError, KeyProviderError, NotFound, ValidationError
from sprongus.domain.import_item import ImportItem, parse_items
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import CANARY, Harness, make_harness, owner

P1, P2 = Scope.project("p1"), Scope.project("p2")


def put(h: Harness, scope: Scope, key: str, value: str = "v") -> None:
    h.secrets.set(owner(), scope, key, SecretValue(value))


def value_of(h: Harness, scope: Scope, key: str) -> str:
    view = h.secrets.get(owner(), scope, key, reveal=True)
    assert view.value is not None
    return view.value.reveal()


def state(h: Harness) -> dict[tuple[str, str], int]:
    return {(str(s), k): r.version for s, rows in h.uow.repository.rows.items() for k, r in rows.items()}


def live(h: Harness) -> set[tuple[str, str]]:
    return {(str(s), k) for s, rows in h.uow.repository.rows.items() for k, r in rows.items() if r.deleted_at is None}


def assert_soft_deleted(h: Harness, scope: Scope, key: str, value: str = "v") -> None:
    """Removed by a replace: gone from get, list and export, but kept (deleted_at set) and restorable."""
    row = h.uow.repository.get_any(scope, key)
    assert row is not None and row.deleted_at is not None
    with pytest.raises(NotFound):
        h.secrets.get(owner(), scope, key)
    assert key not in [v.key for v in h.secrets.list(owner(), scope, limit=500).items]
    assert key not in [v.key for v in h.transfer.export(owner(), scope).items]
    assert key in [v.key for v in h.secrets.list(owner(), scope, limit=500, deleted=True).items]
    h.history.restore(owner(), scope, key)
    assert value_of(h, scope, key) == value
    h.secrets.unset(owner(), scope, key)  # back as the import left it


def item(scope: Scope, key: str, value: str = "new", meta: dict[str, Any] | None = None) -> ImportItem:
    return ImportItem(scope, key, SecretValue(value), meta)


def test_plaintext_import_is_refused_unless_allowed(harness: Harness) -> None:
    with pytest.raises(ValidationError) as err:
        harness.transfer.import_(owner(), [item(P1, "a")])
    assert err.value.field == "plaintext"
    assert state(harness) == {}
    harness.transfer.import_(owner(), [item(P1, "a")], allow_plaintext=True)
    assert value_of(harness, P1, "a") == "new"


def test_merge_upserts_and_keeps_the_rest(harness: Harness) -> None:
    put(harness, P1, "a", "old-a")
    put(harness, P1, "b", "old-b")
    report = harness.transfer.import_(owner(), [item(P1, "a", "new-a"), item(P1, "c", "new-c")],
                                     allow_plaintext=True)
    assert report.added == [("project:p1", "c")] and report.updated == [("project:p1", "a")]
    assert report.removed == []
    assert (value_of(harness, P1, "a"), value_of(harness, P1, "b"), value_of(harness, P1, "c")) == \
        ("new-a", "old-b", "new-c")
    assert state(harness)[("project:p1", "a")] == 2


def test_replace_deletes_only_inside_the_named_scopes_and_prefix(harness: Harness) -> None:
    for key in ("notion.a", "notion.b", "gdocs.x"):
        put(harness, P1, key)
    put(harness, P2, "notion.b")
    report = harness.transfer.import_(owner(), [item(P1, "notion.a")], mode="replace", prefix="notion.",
                                     allow_plaintext=True)
    assert report.removed == [("project:p1", "notion.b")]
    # A replace's removal is a soft delete now: the secret is gone from every read, kept, and restorable.
    assert live(harness) == {("project:p1", "notion.a"), ("project:p1", "gdocs.x"), ("project:p2", "notion.b")}
    assert_soft_deleted(harness, P1, "notion.b")
    harness.transfer.import_(owner(), [item(P1, "only")], mode="replace", allow_plaintext=True)
    assert live(harness) == {("project:p1", "only"), ("project:p2", "notion.b")}
    assert set(state(harness)) - live(harness) == {("project:p1", "notion.a"), ("project:p1", "notion.b"),
                                                    ("project:p1", "gdocs.x")}
    assert_soft_deleted(harness, P1, "gdocs.x")


@pytest.mark.parametrize(("bad", "field"), [
    ([{"scope": "project:p1", "key": "ok", "value": "v"}, {"scope": "project:p1", "key": "9bad", "value": "v"}],
     "items[1].key"),
    ([{"scope": "project:p1", "key": "ok", "value": "v"}, {"scope": "project:p1", "key": "big", "value": "x" * 65537}],
     "items[1].value"),
    ([{"scope": "project:p1", "key": "ok", "value": "v"}, {"scope": "project:p1", "key": "ok", "value": "w"}],
     "items[1].key"),
    ([{"scope": "project:p1", "key": "ok", "value": "v"}, {"scope": "project:p1", "key": "m", "value": "v",
                                                          "meta": {"BAD": 1}}], "items[1].meta"),
])
def test_one_bad_item_aborts_the_whole_import(harness: Harness, bad: list[dict[str, Any]], field: str) -> None:
    put(harness, P1, "ok", "original")
    before = state(harness)
    with pytest.raises(ValidationError) as err:
        harness.transfer.import_(owner(), parse_items(bad), mode="replace", allow_plaintext=True)
    assert err.value.field == field
    assert state(harness) == before
    assert value_of(harness, P1, "ok") == "original"


@pytest.mark.parametrize(("entry", "field"), [
    (ImportItem(P1, "9bad", SecretValue("v")), "items[1].key"),
    (ImportItem(P1, "m", SecretValue("v"), {"BAD": 1}), "items[1].meta"),
])
def test_unparsed_items_are_validated_by_the_service_too(harness: Harness, entry: ImportItem, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        harness.transfer.import_(owner(), [item(P1, "ok"), entry], allow_plaintext=True)
    assert err.value.field == field
    assert state(harness) == {}


def test_a_failure_while_writing_leaves_nothing_half_imported(harness: Harness,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    put(harness, P1, "a", "old-a")
    put(harness, P1, "stale")
    before, real_wrap, calls = state(harness), harness.master.wrap, []

    def flaky_wrap(dek: bytes, aad: bytes) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise KeyProviderError("KMS down")
        return real_wrap(dek, aad)

    monkeypatch.setattr(harness.master, "wrap", flaky_wrap)
    with pytest.raises(KeyProviderError):
        harness.transfer.import_(owner(), [item(P1, "a"), item(P1, "b"), item(P1, "c")], mode="replace",
                                allow_plaintext=True)
    assert state(harness) == before
    assert value_of(harness, P1, "a") == "old-a"


def test_dry_run_reports_changes_and_writes_nothing(harness: Harness) -> None:
    put(harness, P1, "keep")
    put(harness, P1, "stale")
    before = state(harness)
    report = harness.transfer.import_(owner(), [item(P1, "keep"), item(P1, "fresh")], mode="replace",
                                     allow_plaintext=True, dry_run=True)
    assert report.dry_run
    assert (report.added, report.updated, report.removed) == (
        [("project:p1", "fresh")], [("project:p1", "keep")], [("project:p1", "stale")])
    assert state(harness) == before


def test_parse_items_errors_name_the_item_and_field() -> None:
    cases: list[tuple[object, str]] = [
        ({"k": "v"}, "items"),
        (["nope"], "items[0]"),
        ([{"scope": "team:x", "key": "k", "value": "v"}], "items[0].scope"),
        ([{"key": "k", "value": "v"}], "items[0].scope"),
        ([{"scope": "system", "key": "k", "value": 3}], "items[0].value"),
        ([{"scope": "system", "key": "k", "value": "v"}, {"scope": "system", "key": "", "value": "v"}],
         "items[1].key"),
    ]
    for raw, field in cases:
        with pytest.raises(ValidationError) as err:
            parse_items(raw)
        assert err.value.field == field
    parsed = parse_items([{"key": "k", "value": "v", "meta": {"a": 1}}], default_scope=P1)
    assert (parsed[0].scope, parsed[0].key, parsed[0].value.reveal(), parsed[0].meta) == (P1, "k", "v", {"a": 1})


def test_export_is_metadata_only_by_default(harness: Harness) -> None:
    harness.secrets.set(owner(), P1, "token", SecretValue(CANARY), {"provider": "notion"})
    result = harness.transfer.export(owner(), P1)
    assert result.bundle is None
    assert [v.key for v in result.items] == ["token"]
    for view in result.items:
        assert view.masked and view.meta == {"provider": "notion"}
        assert CANARY not in repr(view) and CANARY not in str(view.to_dict())
    assert CANARY not in repr(result)


def bundle_of(h: Harness, passphrase: str | None = None, scope: Scope = P1) -> dict[str, Any]:
    doc = h.transfer.export(owner(), scope, bundle=True,
                           passphrase=None if passphrase is None else SecretValue(passphrase)).bundle
    assert doc is not None
    return doc


@pytest.fixture
def source() -> Harness:
    h = make_harness()
    h.secrets.set(owner(), P1, "a", SecretValue("alpha"), {"t": 1})
    h.secrets.set(owner(), P1, "b", SecretValue(""))
    h.secrets.set(owner(), P1, "c", SecretValue("gamma"))
    return h


def test_bundle_round_trip_with_the_same_master_key(source: Harness) -> None:
    doc = bundle_of(source)
    assert doc["format"] == "sprongus.bundle.v1" and doc["count"] == 3
    assert "alpha" not in str(doc) and "gamma" not in str(doc)
    target = make_harness(source.versions)
    report = target.transfer.import_(owner(), bundle=doc)
    assert len(report.added) == 3
    assert [value_of(target, P1, k) for k in ("a", "b", "c")] == ["alpha", "", "gamma"]
    assert target.secrets.get(owner(), P1, "a").meta == {"t": 1}


TAMPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "item dropped": lambda d: d["items"].pop(1),
    "items reordered": lambda d: d["items"].reverse(),
    "meta edited": lambda d: d["items"][0]["meta"].update(t=2),
    "key edited": lambda d: d["items"][0].update(key="z"),
    "version edited": lambda d: d["items"][0].update(version=2),
    "ciphertext edited": lambda d: d["items"][0].update(ciphertext=d["items"][2]["ciphertext"]),
    "count changed": lambda d: d.update(count=2),
    "mac removed": lambda d: d.pop("mac"),
    "item dropped and count fixed": lambda d: (d["items"].pop(), d.update(count=2)),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
@pytest.mark.parametrize("passphrase", [None, "correct horse"])
def test_bundle_tampering_is_detected(source: Harness, tamper: str, passphrase: str | None) -> None:
    doc = copy.deepcopy(bundle_of(source, passphrase))
    TAMPERS[tamper](doc)
    target = make_harness(source.versions)
    with pytest.raises(IntegrityError):
        target.transfer.import_(owner(), bundle=doc,
                               passphrase=None if passphrase is None else SecretValue(passphrase))
    assert state(target) == {}


def test_passphrase_bundle_moves_to_another_master_key(source: Harness) -> None:
    doc = bundle_of(source, "correct horse")
    assert all(i["masterKeyId"] == "passphrase" for i in doc["items"])
    other = make_harness()
    with pytest.raises(IntegrityError):
        other.transfer.import_(owner(), bundle=doc, passphrase=SecretValue("wrong horse"))
    with pytest.raises(ValidationError) as err:
        other.transfer.import_(owner(), bundle=doc)
    assert err.value.field == "passphrase"
    assert state(other) == {}
    other.transfer.import_(owner(), bundle=doc, passphrase=SecretValue("correct horse"))
    assert [value_of(other, P1, k) for k in ("a", "b", "c")] == ["alpha", "", "gamma"]


# The cost is the client's choice and the server's bill: n <= 2^17, r <= 8, p = 1 (and n a power of two, which
# OpenSSL needs: 2^15 + 1 used to escape as a bare ValueError).
@pytest.mark.parametrize(("params", "field"), [
    ({"n": 2**18}, "n"), ({"n": 2**20, "r": 16, "p": 4}, "n"), ({"n": 1024}, "n"), ({"n": 2**15 + 1}, "n"),
    ({"n": True}, "n"), ({"r": 16}, "r"), ({"r": "8"}, "r"), ({"r": 0}, "r"), ({"p": 2}, "p"), ({"p": 0}, "p")])
def test_crafted_scrypt_parameters_are_refused_cleanly(source: Harness, params: dict[str, Any], field: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    doc = bundle_of(source, "correct horse")
    doc["protection"].update(params)
    target = make_harness()
    monkeypatch.setattr("hashlib.scrypt", _no_kdf)
    with pytest.raises(ValidationError) as err:
        target.transfer.import_(owner(), bundle=doc, passphrase=SecretValue("correct horse"))
    assert err.value.field == f"bundle.protection.{field}"
    assert state(target) == {}


def _no_kdf(*args: Any, **kwargs: Any) -> bytes:
    raise AssertionError("scrypt ran for parameters that should have been refused first")


def test_the_largest_allowed_scrypt_cost_is_accepted(source: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sprongus.domain.bundle.SCRYPT_N", 2**17)  # what a stronger exporter might write
    doc = bundle_of(source, "correct horse")
    assert (doc["protection"]["n"], doc["protection"]["r"], doc["protection"]["p"]) == (2**17, 8, 1)
    target = make_harness()
    target.transfer.import_(owner(), bundle=doc, passphrase=SecretValue("correct horse"))
    assert value_of(target, P1, "a") == "alpha"


def test_master_key_bundle_fails_cleanly_elsewhere(source: Harness) -> None:
    other = make_harness()
    other.secrets.set(owner(), P1, "a", SecretValue("mine"))
    # Key ids are unique, so another vault's bundle names a key this vault does not have.
    with pytest.raises((KeyProviderError, IntegrityError, ValidationError)):
        other.transfer.import_(owner(), bundle=bundle_of(source), mode="replace")
    assert state(other) == {("project:p1", "a"): 1}
    assert value_of(other, P1, "a") == "mine"


def test_bundle_import_replace_uses_the_bundle_scopes(source: Harness) -> None:
    doc = bundle_of(source)
    target = make_harness(source.versions)
    put(target, P1, "extra")
    put(target, P2, "other")
    report = target.transfer.import_(owner(), bundle=doc, mode="replace")
    assert report.removed == [("project:p1", "extra")]
    assert live(target) == {("project:p1", "a"), ("project:p1", "b"), ("project:p1", "c"), ("project:p2", "other")}
    assert_soft_deleted(target, P1, "extra")
