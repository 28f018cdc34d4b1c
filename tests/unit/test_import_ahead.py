"""service/import_ahead.py: an import's versions sealed before its transaction are stored only for the plan they
were sealed for and under the key the process still uses; otherwise they are sealed again inside (real envelope,
keys and in-memory unit of work from the harness)."""

from __future__ import annotations

from dataclasses import replace

from sprongus.adapters.random_os import OsRandomSource
from sprongus.domain.errors import IntegrityError
from sprongus.domain.import_item import ImportItem, SealJob
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.service.import_ahead import seal_before, sealed_now
from sprongus.service.import_plan import Incoming
from sprongus.service.sealing import Sealer
from tests.harness import CANARY, Harness, make_harness, owner
from tests.unit.test_seal_ahead import CheckedKey

SCOPE = Scope.project("p1")


def _plan(repo: object, secret: Incoming, previous: object) -> list[SealJob]:
    """Version 1 of each new secret (what TransferOps plans for a key the vault never had)."""
    return [SealJob(None, item.scope, item.key, item.value, None, after_version=0, by="owner") for item in secret.items]


def _secrets() -> list[Incoming]:
    return [Incoming([ImportItem(SCOPE, f"k{i}", SecretValue(f"{CANARY}{i}"))]) for i in range(3)]


def _checked(h: Harness) -> tuple[Harness, CheckedKey]:
    checked = CheckedKey(h.deps.sealer.envelope.current_master_key_id())
    sealer = Sealer(h.deps.sealer.envelope, h.clock, OsRandomSource(), checked)  # type: ignore[arg-type]
    h.deps = replace(h.deps, sealer=sealer)
    return h, checked


def test_an_unchanged_plan_takes_its_early_seal_stamped_with_the_transaction_s_time() -> None:
    h, _ = _checked(make_harness())
    secrets = _secrets()
    early = seal_before(h.deps, owner(), secrets, _plan, None)
    h.clock.advance(5)
    planned = {s.place: _plan(None, s, None) for s in secrets}
    ready = sealed_now(h.deps, planned, early)
    for secret in secrets:
        (record,) = ready[secret.place]
        assert record.dek_wrapped == early[secret.place][1][0].dek_wrapped  # no second seal
        assert record.updated_at == record.created_at == h.clock.now()
        assert h.deps.sealer.open(record).reveal() == secret.current.value.reveal()


def test_a_changed_plan_or_a_newer_master_key_is_sealed_again() -> None:
    h, checked = _checked(make_harness())
    secrets = _secrets()
    early = seal_before(h.deps, owner(), secrets, _plan, None)
    planned = {s.place: _plan(None, s, None) for s in secrets}
    moved = secrets[0].place  # another write took version 1 of k0 meanwhile: the transaction plans version 2
    planned[moved] = [replace(planned[moved][0], after_version=1)]
    ready = sealed_now(h.deps, planned, early)
    assert ready[moved][0].version == 2 and ready[moved][0].dek_wrapped != early[moved][1][0].dek_wrapped
    assert h.deps.sealer.open(ready[moved][0]).reveal() == f"{CANARY}0"  # its AAD names version 2
    assert ready[secrets[1].place][0].dek_wrapped == early[secrets[1].place][1][0].dek_wrapped

    h.add_master_key()  # the process adopted a newer key before the transaction opened
    checked.key_id = h.deps.sealer.envelope.current_master_key_id()
    again = sealed_now(h.deps, planned, early)
    assert all(records[0].master_key_id == checked.key_id for records in again.values())


def test_a_damaged_row_seals_nothing_early() -> None:
    h = make_harness()
    calls: list[int] = []

    def damaged(repo: object, secret: Incoming, previous: object) -> list[SealJob]:
        calls.append(1)
        if secret.place[1] == "k1":
            raise IntegrityError()  # as TransferOps' plan does for a current row that does not decode
        return _plan(repo, secret, previous)

    assert seal_before(h.deps, owner(), _secrets(), damaged, None) == {}  # the transaction refuses the import
    assert len(calls) == 2  # stopped at the damaged one: no KMS call is made for an import that cannot land


def test_progress_is_reported_while_sealing_early() -> None:
    h = make_harness(batch_size=2)
    progress: list[tuple[int, int]] = []
    seal_before(h.deps, owner(), _secrets(), _plan, lambda done, total: progress.append((done, total)))
    assert progress == [(2, 3), (3, 3)]
