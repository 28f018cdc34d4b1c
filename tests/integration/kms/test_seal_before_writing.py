"""On SQLite with a KMS, a write seals its value before it takes the vault's only writer (real SQLite, the real
Cloud KMS SDK against the wire-protocol fake, an Encrypt held in flight).

Sealing a new version wraps its data key: a KMS round trip. Inside the write transaction that round trip held
SQLite's one writer, so every other write and every reveal's audit row waited for it (8 writers made 40 writes/s in
all at 20 ms, and reveals waited up to 0.8 s). Here the fake holds an Encrypt open as a slow KMS would, and the rest
of the vault must keep working meanwhile. A write that loses its version number meanwhile seals again in its
transaction; an If-Match write that loses it is refused with nothing written; writers of one key in one process
take turns, so none seals for a number another takes. An import seals all its versions before its transaction too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sprongus.adapters.memory import InMemoryUnitOfWork
from sprongus.domain.envelope import aad_for
from sprongus.domain.errors import Conflict
from sprongus.domain.import_item import ImportItem
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.container import Container
from sprongus.service.seal_ahead import SealAhead
from tests.harness import owner
from tests.integration.kms import vaults
from tests.integration.kms.gcp_fake import FakeCloudKms
from tests.integration.kms.test_gcp import gcp_settings

CANARY = "CANARY-seal-ahead-8e41c2-"
SCOPE = Scope.project("p1")
KMS_TIMEOUT = "30"  # the SDK's deadline: a held Encrypt outlasts every wait below on the code before the change
WAIT = 5.0  # seconds: far above any operation here, far below the deadline


@pytest.fixture
def vault(gcp_kms: FakeCloudKms, tmp_path: Path) -> Iterator[Container]:
    container = vaults.open_vault(tmp_path, SPRONGUS_KMS_TIMEOUT=KMS_TIMEOUT, **gcp_settings(gcp_kms))
    try:
        assert isinstance(container.service_deps().seal_ahead, SealAhead)
        container.secret_ops().set(owner(), SCOPE, "a", SecretValue(f"{CANARY}a1"))
        container.secret_ops().set(owner(), SCOPE, "b", SecretValue(f"{CANARY}b1"))
        # The vault's key is re-checked every few seconds with an Encrypt of its own: none in the counts below.
        container.vault_keys().refresh_seconds = float("inf")
        yield container
    finally:
        gcp_kms.released.set()
        vaults.close(container)


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _hold_seal(kms: FakeCloudKms, key: str, version: int,
               work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Holds the Encrypt that seals `version` of `key` (matched by its AAD: not the key check's probe, say)."""
    aad = aad_for(SCOPE, key, version)
    kms.holding, kms.released = threading.Event(), threading.Event()
    kms.hold = lambda method, request: method == "Encrypt" and request.additional_authenticated_data == aad
    thread, outcome = _in_thread(work)
    assert kms.holding.wait(WAIT), "the write never reached the KMS"
    return thread, outcome


def _finish(kms: FakeCloudKms, thread: threading.Thread, outcome: list[Any]) -> Any:
    kms.released.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    return outcome[0]


def _done_meanwhile(work: Callable[[], Any]) -> Any:
    thread, outcome = _in_thread(work)
    thread.join(WAIT)
    assert not thread.is_alive(), "waited for another write's KMS call"
    assert not isinstance(outcome[0], BaseException), outcome
    return outcome[0]


def _value(vault: Container, key: str, version: int | None = None) -> str:
    view = vault.secret_ops().get(owner(), SCOPE, key, reveal=True, version=version)
    assert view.value is not None
    return view.value.reveal()


def _chain_is_clean(vault: Container) -> bool:
    return vault.audit_sink().verify_chain().problems == []


def test_writes_and_reveals_go_on_while_a_write_waits_for_the_kms(vault: Container, gcp_kms: FakeCloudKms) -> None:
    ops = vault.secret_ops()
    held, outcome = _hold_seal(gcp_kms, "a", 2, lambda: ops.set(owner(), SCOPE, "a", SecretValue(f"{CANARY}a2")))
    # Before, each of these waited for the held write's transaction (SQLite's one writer) until the KMS answered.
    written = _done_meanwhile(lambda: ops.set(owner(), SCOPE, "b", SecretValue(f"{CANARY}b2")))
    assert written.view.version == 2
    assert _done_meanwhile(lambda: (_value(vault, "b"), _value(vault, "a"))) == (f"{CANARY}b2", f"{CANARY}a1")
    assert held.is_alive()  # still in its KMS call
    assert _finish(gcp_kms, held, outcome).view.version == 2
    assert _value(vault, "a") == f"{CANARY}a2"
    assert _chain_is_clean(vault)


def test_a_write_that_lost_its_version_number_meanwhile_seals_again(vault: Container, gcp_kms: FakeCloudKms,
                                                                    tmp_path: Path) -> None:
    ops = vault.secret_ops()
    held, outcome = _hold_seal(gcp_kms, "a", 2, lambda: ops.set(owner(), SCOPE, "a", SecretValue(f"{CANARY}a3")))
    # Another process's write (a second container over the same file: its own key turns) takes version 2.
    other = vaults.open_vault(tmp_path, SPRONGUS_KMS_TIMEOUT=KMS_TIMEOUT, **gcp_settings(gcp_kms))
    try:
        assert _done_meanwhile(lambda: other.secret_ops().set(
            owner(), SCOPE, "a", SecretValue(f"{CANARY}a2"))).view.version == 2
    finally:
        vaults.close(other)
    encrypts = gcp_kms.calls["Encrypt"]
    assert _finish(gcp_kms, held, outcome).view.version == 3  # sealed again for the number it now gets
    assert gcp_kms.calls["Encrypt"] == encrypts + 1
    assert (_value(vault, "a"), _value(vault, "a", version=2)) == (f"{CANARY}a3", f"{CANARY}a2")
    assert _chain_is_clean(vault)


def test_an_if_match_write_that_lost_its_version_is_refused_and_writes_nothing(
        vault: Container, gcp_kms: FakeCloudKms, tmp_path: Path) -> None:
    ops = vault.secret_ops()
    held, outcome = _hold_seal(gcp_kms, "a", 2, lambda: ops.set(
        owner(), SCOPE, "a", SecretValue(f"{CANARY}lost"), expected_version=1))
    other = vaults.open_vault(tmp_path, SPRONGUS_KMS_TIMEOUT=KMS_TIMEOUT, **gcp_settings(gcp_kms))
    try:
        _done_meanwhile(lambda: other.secret_ops().set(owner(), SCOPE, "a", SecretValue(f"{CANARY}a2")))
    finally:
        vaults.close(other)
    refused = _finish(gcp_kms, held, outcome)
    assert isinstance(refused, Conflict) and refused.current_version == 2
    assert [item.version for item in vault.history_ops().history(owner(), SCOPE, "a").items] == [2, 1]
    assert _value(vault, "a") == f"{CANARY}a2"


def test_a_rollback_opens_and_seals_before_the_writer(vault: Container, gcp_kms: FakeCloudKms) -> None:
    vault.secret_ops().set(owner(), SCOPE, "a", SecretValue(f"{CANARY}a2"))
    held, outcome = _hold_seal(gcp_kms, "a", 3, lambda: vault.history_ops().rollback(owner(), SCOPE, "a", 1))
    written = _done_meanwhile(lambda: vault.secret_ops().set(owner(), SCOPE, "b", SecretValue(f"{CANARY}b2")))
    assert written.view.version == 2
    assert _finish(gcp_kms, held, outcome).view.version == 3
    assert _value(vault, "a") == f"{CANARY}a1"
    assert _chain_is_clean(vault)


def test_writers_of_one_key_take_turns_and_no_seal_is_wasted(vault: Container, gcp_kms: FakeCloudKms) -> None:
    gcp_kms.delay = 0.01
    ops, threads, each = vault.secret_ops(), 6, 4
    encrypts = gcp_kms.calls["Encrypt"]

    def write(n: int) -> None:
        for i in range(each):
            ops.set(owner(), SCOPE, "a", SecretValue(f"{CANARY}{n}-{i}"))

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert vault.secret_ops().get(owner(), SCOPE, "a").version == 1 + threads * each
    assert gcp_kms.calls["Encrypt"] - encrypts == threads * each  # one wrap per version: none sealed twice
    assert _chain_is_clean(vault)


def test_the_canary_is_stored_only_sealed(vault: Container, gcp_kms: FakeCloudKms, tmp_path: Path) -> None:
    held, outcome = _hold_seal(gcp_kms, "a", 2, lambda: vault.secret_ops().set(
        owner(), SCOPE, "a", SecretValue(f"{CANARY}a2")))
    _done_meanwhile(lambda: vault.secret_ops().set(owner(), SCOPE, "b", SecretValue(f"{CANARY}b2")))
    _finish(gcp_kms, held, outcome)
    _import(vault, {"c": f"{CANARY}c1", "a": f"{CANARY}a3"})  # sealed before its transaction too
    vaults.close(vault)  # checkpoints the WAL into the file
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path.name


def _import(vault: Container, values: dict[str, str], progress: list[tuple[int, int]] | None = None) -> Any:
    items = [ImportItem(SCOPE, key, SecretValue(value)) for key, value in values.items()]
    return vault.transfer_ops().import_(owner(), items, allow_plaintext=True,
                                        progress=None if progress is None else lambda *done: progress.append(done))


def _sealed_for(kms: FakeCloudKms) -> list[bytes]:
    """The AAD of every Encrypt from now on (each names a scope, key and version), kept by the hold predicate (the
    fake clears a predicate once it has held a call: this one never holds, so it stays)."""
    seen: list[bytes] = []

    def watch(method: str, request: Any) -> bool:
        if method == "Encrypt":
            seen.append(request.additional_authenticated_data)
        return False

    kms.hold = watch
    return seen


def test_an_import_seals_before_the_writer(vault: Container, gcp_kms: FakeCloudKms) -> None:
    """Before, all of an import's KMS calls ran inside its one write transaction: every reveal's audit row waited
    for the whole import, past the busy timeout in a large one."""
    progress: list[tuple[int, int]] = []
    values = {"a": f"{CANARY}a2", **{f"new{i}": f"{CANARY}new{i}" for i in range(5)}}
    held, outcome = _hold_seal(gcp_kms, "new3", 1, lambda: _import(vault, values, progress))
    sealed = _sealed_for(gcp_kms)
    written = _done_meanwhile(lambda: vault.secret_ops().set(owner(), SCOPE, "b", SecretValue(f"{CANARY}b2")))
    assert written.view.version == 2
    assert _done_meanwhile(lambda: _value(vault, "b")) == f"{CANARY}b2"
    report = _finish(gcp_kms, held, outcome)
    assert (len(report.added), len(report.updated)) == (5, 1)
    assert aad_for(SCOPE, "new3", 1) not in sealed  # held before the watch began, and never sealed again
    assert {key: _value(vault, key) for key in values} == values
    assert vault.secret_ops().get(owner(), SCOPE, "a").version == 2
    assert progress[-1] == (6, 6) and progress == sorted(progress) and progress.count((6, 6)) == 1
    # Sealed before `b`'s write, stored after it: stamped with the import transaction's time, like any write.
    assert vault.secret_ops().get(owner(), SCOPE, "new0").updated_at >= written.view.updated_at
    assert _chain_is_clean(vault)


def test_an_import_whose_secret_was_written_meanwhile_seals_that_one_again(
        vault: Container, gcp_kms: FakeCloudKms, tmp_path: Path) -> None:
    held, outcome = _hold_seal(gcp_kms, "a", 2, lambda: _import(vault, {"a": f"{CANARY}a3", "c": f"{CANARY}c1"}))
    other = vaults.open_vault(tmp_path, SPRONGUS_KMS_TIMEOUT=KMS_TIMEOUT, **gcp_settings(gcp_kms))
    try:  # another process takes version 2 of `a` while the import's seal for it is in flight
        _done_meanwhile(lambda: other.secret_ops().set(owner(), SCOPE, "a", SecretValue(f"{CANARY}a2")))
    finally:
        vaults.close(other)
    sealed = _sealed_for(gcp_kms)
    assert not isinstance(_finish(gcp_kms, held, outcome), BaseException)
    assert aad_for(SCOPE, "a", 3) in sealed  # sealed again in the transaction, for the number it now gets
    assert aad_for(SCOPE, "c", 1) not in sealed  # `c`'s plan did not change: its early seal was used
    assert (_value(vault, "a"), _value(vault, "a", version=2), _value(vault, "c")) == \
        (f"{CANARY}a3", f"{CANARY}a2", f"{CANARY}c1")
    assert vault.secret_ops().get(owner(), SCOPE, "c").version == 1
    assert _chain_is_clean(vault)


@pytest.mark.parametrize(("engine", "keys", "ahead"), [("sqlite", "gcp", True), ("sqlite", "env", False),
                                                       ("postgres", "gcp", False)])
def test_only_sqlite_with_a_kms_seals_ahead(engine: str, keys: str, ahead: bool, gcp_kms: FakeCloudKms,
                                            tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """With a local key the seal costs less than the read before it; on Postgres a writer locks only its own row."""
    settings = gcp_settings(gcp_kms) if keys == "gcp" else {"SPRONGUS_KEY_PROVIDER": "env",
                                                            "SPRONGUS_MASTER_KEYS": "k1:" + "A" * 43 + "="}
    if engine == "postgres":
        settings["SPRONGUS_DATABASE_URL"] = request.getfixturevalue("pg_db").maintenance_url
    container = vaults.open_vault(tmp_path, **settings)
    try:
        assert (container.service_deps().seal_ahead is not None) is ahead
    finally:
        vaults.close(container)
    assert InMemoryUnitOfWork().serializes_writes is True
