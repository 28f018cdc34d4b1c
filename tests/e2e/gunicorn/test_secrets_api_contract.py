"""The SecretsApi contract: the local use cases (on SQLite) and the HTTP client (against this package's gunicorn,
Postgres, Redis and OpenBao stack) give the same results and raise the same errors, so every `sprongus secrets`
command behaves the same with and without --remote.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sprongus.adapters.http_client import ApiClient, HttpSecretsApi
from sprongus.domain.errors import NotFound, ValidationError
from sprongus.domain.import_item import ImportItem
from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from sprongus.ports.secrets_api import SecretsApi
from sprongus.service.local_api import LocalSecretsApi
from sprongus.service.pages import api_views
from tests.e2e.gunicorn.conftest import Stack
from tests.harness import CANARY


@pytest.fixture(params=["local", "remote"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SecretsApi, Scope]]:
    if request.param == "local":
        settings = Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path),
                                          "SPRONGUS_KEY_PROVIDER": "memory"})
        container = build_container(settings, local_owner=True)
        yield (LocalSecretsApi(Principal.local_owner("owner"), container.secret_ops, container.transfer_ops,
                               container.rotation_ops, container.batch_reveal_ops, container.history_ops),
               Scope.project("contract"))
        container.database().db.close()
        return
    stack: Stack = request.getfixturevalue("stack")
    project = stack.unique("contract")
    token = stack.token(stack.unique("contract-bot"), projects=(project,))
    yield HttpSecretsApi(ApiClient(stack.url, token)), Scope.project(project)


def test_set_creates_then_updates_and_reads_stay_masked(api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    first = secrets.set(scope, "db.password", SecretValue(CANARY), {"owner": "team-a"})
    second = secrets.set(scope, "db.password", SecretValue(CANARY + "-2"))
    assert (first.created, first.view.version, second.created, second.view.version) == (True, 1, False, 2)
    masked = secrets.get(scope, "db.password")
    assert masked.masked and masked.value is None and masked.meta == {"owner": "team-a"}  # meta kept
    revealed = secrets.get(scope, "db.password", reveal=True)
    assert revealed.value is not None and revealed.value.reveal() == CANARY + "-2" and revealed.version == 2


def test_missing_secrets_and_bad_names_raise_the_same_errors(api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    with pytest.raises(NotFound):
        secrets.get(scope, "absent")
    with pytest.raises(NotFound):
        secrets.unset(scope, "absent")
    with pytest.raises(ValidationError) as bad:
        secrets.set(scope, "9starts.with.a.digit", SecretValue("v"))
    assert CANARY not in str(bad.value)


def test_list_pages_follow_the_cursor_in_key_order(api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    for key in ("b.two", "a.one", "c.three", "b.one", "x"):
        secrets.set(scope, key, SecretValue("v"), {"k": key})
    first = secrets.list(scope, limit=2)
    assert [v.key for v in first.items] == ["a.one", "b.one"] and first.next_cursor
    assert all(v.masked and v.meta == {} for v in first.items)  # no meta unless asked for
    second = secrets.list(scope, cursor=first.next_cursor, limit=2)
    assert [v.key for v in second.items] == ["b.two", "c.three"]
    assert [v.key for v in api_views(secrets, scope)] == ["a.one", "b.one", "b.two", "c.three", "x"]
    with_meta = list(api_views(secrets, scope, "b.", with_meta=True))
    assert [(v.key, v.meta) for v in with_meta] == [("b.one", {"k": "b.one"}), ("b.two", {"k": "b.two"})]


def test_reveal_many_opens_a_prefix_or_named_keys_in_one_call(api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    for key in ("svc.b", "svc.a", "other"):
        secrets.set(scope, key, SecretValue(f"{CANARY}-{key}"))
    by_prefix = secrets.reveal_many(scope, prefix="svc.")
    by_keys = secrets.reveal_many(scope, keys=["other", "svc.a", "absent", "svc.a"])
    assert [(i.key, i.value.reveal(), i.version) for i in by_prefix.items] == [
        ("svc.a", f"{CANARY}-svc.a", 1), ("svc.b", f"{CANARY}-svc.b", 1)]
    assert by_prefix.missing == []
    assert [i.key for i in by_keys.items] == ["other", "svc.a"] and by_keys.missing == ["absent"]
    with pytest.raises(ValidationError):
        secrets.reveal_many(scope, prefix="svc.", keys=["svc.a"])


def test_unset_removes_the_secret(api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    secrets.set(scope, "gone.soon", SecretValue("v"))
    secrets.unset(scope, "gone.soon")
    with pytest.raises(NotFound):
        secrets.get(scope, "gone.soon")


def test_import_reports_changes_dry_runs_write_nothing_and_plaintext_needs_consent(
        api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    secrets.set(scope, "keep", SecretValue("old"))
    secrets.set(scope, "stale", SecretValue("old"))
    items = [ImportItem(scope, "keep", SecretValue(CANARY)), ImportItem(scope, "fresh", SecretValue("new"))]
    with pytest.raises(ValidationError):
        secrets.import_(items=items)
    dry = secrets.import_(items=items, mode="replace", allow_plaintext=True, dry_run=True)
    expected = ([(str(scope), "fresh")], [(str(scope), "keep")], [(str(scope), "stale")])
    assert (dry.added, dry.updated, dry.removed, dry.dry_run) == (*expected, True)
    assert [v.key for v in api_views(secrets, scope)] == ["keep", "stale"]
    done = secrets.import_(items=items, mode="replace", allow_plaintext=True)
    assert (done.added, done.updated, done.removed, done.dry_run) == (*expected, False)
    assert [v.key for v in api_views(secrets, scope)] == ["fresh", "keep"]
    assert secrets.get(scope, "keep", reveal=True).value == SecretValue(CANARY)


def test_export_metadata_and_a_bundle_that_imports_back(api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    secrets.set(scope, "svc.a", SecretValue(CANARY), {"env": "prod"})
    secrets.set(scope, "svc.b", SecretValue("b"))
    metadata = secrets.export(scope, "svc.")
    assert metadata.bundle is None and [(v.key, v.masked) for v in metadata.items] == [("svc.a", True), ("svc.b", True)]
    bundled = secrets.export(scope, "svc.", bundle=True)
    assert bundled.bundle is not None and bundled.bundle["count"] == 2 and CANARY not in str(bundled.bundle)
    secrets.unset(scope, "svc.a")
    report = secrets.import_(bundle=bundled.bundle)
    assert (report.added, report.updated) == ([(str(scope), "svc.a")], [(str(scope), "svc.b")])
    restored = secrets.get(scope, "svc.a", reveal=True)
    assert restored.value == SecretValue(CANARY) and restored.meta == {"env": "prod"}


def test_rotate_one_key_or_a_prefix_bumps_versions_and_keeps_values(api: tuple[SecretsApi, Scope]) -> None:
    secrets, scope = api
    for key in ("r.one", "r.two", "other"):
        secrets.set(scope, key, SecretValue(f"value of {key}"))
    assert secrets.rotate(scope, "r.one").rotated == 1
    assert secrets.rotate(scope, prefix="r.").rotated == 2
    versions = {v.key: v.version for v in api_views(secrets, scope)}
    assert versions == {"other": 1, "r.one": 3, "r.two": 2}
    assert secrets.get(scope, "r.one", reveal=True).value == SecretValue("value of r.one")
    with pytest.raises(NotFound):
        secrets.rotate(scope, "absent")
