"""The AuditSink / AuditTrail contract: every sink in SINK_FACTORIES runs the same suite.

The AuditSink port only records: it has no way to read events back. Each factory therefore also returns a
`stored` reader that lists what its adapter actually kept (the in-memory list, or the audit_event rows without
their chain columns), so the suite can check that events are kept in order, with exactly the fields given and
nothing else: no value, ever.

The in-memory sink implements no AuditTrail at all (it keeps no hash chain; the container wires audit_trail to
None for the memory backend), so the chain tests run only on the backends whose sink is also an AuditTrail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import peewee
import pytest

from sprongus.adapters.memory import InMemoryAuditSink
from sprongus.adapters.peewee.audit import PeeweeAuditSink
from sprongus.adapters.peewee.models import BoundModels
from sprongus.domain.errors import AuditUnavailable
from sprongus.domain.records import AuditAction, AuditEvent, Outcome
from sprongus.ports.audit import AuditSink, AuditTrail
from tests.contract.backends import BACKENDS, MODEL_FACTORIES, T0, backend, race

EVENT_FIELDS = {f.name for f in fields(AuditEvent)}
CHAIN_COLUMNS = {"seq", "prev_hash", "hash"}  # the peewee sink's own bookkeeping, not event fields


@dataclass
class Subject:
    sink: AuditSink
    stored: Callable[[], list[dict[str, Any]]]  # every kept event as a field -> value dict, oldest first
    trail: AuditTrail | None  # None: this adapter keeps no chain
    models: BoundModels | None
    break_store: Callable[[pytest.MonkeyPatch], None]  # makes every later write fail as its storage would


def memory_subject(_: BoundModels | None) -> Subject:
    sink = InMemoryAuditSink()

    def stored() -> list[dict[str, Any]]:
        return [{name: getattr(event, name) for name in EVENT_FIELDS} for event in sink.events]

    def break_store(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sink, "available", False)

    return Subject(sink, stored, None, None, break_store)


def peewee_subject(models: BoundModels | None) -> Subject:
    assert models is not None
    sink = PeeweeAuditSink(models)
    m = models.audit

    def stored() -> list[dict[str, Any]]:
        names = [n for n in m._meta.sorted_field_names if n not in CHAIN_COLUMNS]
        return [{name: getattr(row, name) for name in names} for row in m.select().order_by(m.seq)]

    def break_store(monkeypatch: pytest.MonkeyPatch) -> None:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise peewee.OperationalError("disk I/O error")

        monkeypatch.setattr(models.db, "execute_sql", fail)

    return Subject(sink, stored, sink, models, break_store)


SINK_FACTORIES: dict[str, Callable[[BoundModels | None], Subject]] = {
    "memory": memory_subject,
    "sqlite": peewee_subject,
    "postgres": peewee_subject,
}
assert list(SINK_FACTORIES) == BACKENDS
TRAIL_BACKENDS = list(MODEL_FACTORIES)  # the sinks that are also an AuditTrail


@pytest.fixture(params=list(SINK_FACTORIES))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    with backend(request.param, tmp_path) as models:
        yield SINK_FACTORIES[request.param](models)


@pytest.fixture(params=TRAIL_BACKENDS)
def chained(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    with backend(request.param, tmp_path) as models:
        made = SINK_FACTORIES[request.param](models)
        assert made.trail is not None
        yield made


def event(n: int = 0, **changes: Any) -> AuditEvent:
    base: dict[str, Any] = dict(
        time=T0 + timedelta(seconds=n), actor="alice", action=AuditAction.UPDATE, scope="project:p1",
        key_name=f"db.password.{n}", version=n + 1, outcome=Outcome.SUCCESS, request_id=f"req-{n}",
        client_address="192.0.2.7", detail={"n": n})
    return AuditEvent(**{**base, **changes})


def as_dict(e: AuditEvent) -> dict[str, Any]:
    return {name: getattr(e, name) for name in EVENT_FIELDS}


VARIED = [
    event(0),
    event(1, actor="owner", action=AuditAction.LIST, scope=None, key_name=None, version=None, request_id=None,
          client_address=None, detail={}),
    event(2, action=AuditAction.REVEAL, outcome=Outcome.DENIED, scope="user:bob", client_address="2001:db8::1",
          detail={"reason": "scope hidden", "tags": ["a", "b"], "nested": {"ok": False, "count": 3, "none": None},
                  "ratio": 0.25, "text": "ünïcödé €"}),
    event(3, action=AuditAction.ROTATE_MASTER, outcome=Outcome.INTEGRITY_ERROR, scope="system",
          time=T0.replace(microsecond=0) + timedelta(days=40)),
    event(4, action=AuditAction.DELETE, outcome=Outcome.NOT_FOUND, version=0, detail={"big": 2**40}),
]


def test_nothing_is_stored_before_anything_is_recorded(subject: Subject) -> None:
    assert subject.stored() == []


def test_events_are_kept_in_order_with_exactly_the_fields_given(subject: Subject) -> None:
    for e in VARIED:
        subject.sink.record(e)
    kept = subject.stored()
    assert kept == [as_dict(e) for e in VARIED]
    for row in kept:
        assert set(row) == EVENT_FIELDS  # nothing added: no value, no plaintext, no extra column
        assert row["time"].utcoffset() == timedelta(0)
        assert row["action"] in set(AuditAction) and row["outcome"] in set(Outcome)


def test_order_is_the_order_of_recording_not_of_event_time(subject: Subject) -> None:
    late, early = event(9, actor="late"), event(1, actor="early")
    subject.sink.record(late)
    subject.sink.record(early)
    subject.sink.record(late)
    assert [row["actor"] for row in subject.stored()] == ["late", "early", "late"]


def test_concurrent_records_are_all_kept_each_in_its_thread_order(subject: Subject) -> None:
    threads, per_thread = 4, 10

    def record_some(index: int) -> None:
        for i in range(per_thread):
            subject.sink.record(event(i, actor=f"thread-{index}", detail={"i": i}))

    race(threads, record_some, subject.models)
    kept = subject.stored()
    assert len(kept) == threads * per_thread
    for index in range(threads):
        mine = [row["detail"]["i"] for row in kept if row["actor"] == f"thread-{index}"]
        assert mine == list(range(per_thread))
    if subject.trail is not None:
        report = subject.trail.verify_chain()
        assert (report.checked, report.problems) == (threads * per_thread, [])


def test_record_many_keeps_a_batch_in_order_after_what_came_before(subject: Subject) -> None:
    subject.sink.record(VARIED[0])
    batch = [event(10 + i, detail={"batch": True}) for i in range(170)]  # more rows than one INSERT carries
    subject.sink.record_many(batch)
    subject.sink.record_many([])
    subject.sink.record(VARIED[1])
    assert subject.stored() == [as_dict(e) for e in (VARIED[0], *batch, VARIED[1])]
    if subject.trail is not None:
        assert subject.trail.verify_chain().problems == []


def test_a_batch_that_cannot_be_written_leaves_nothing(subject: Subject, monkeypatch: pytest.MonkeyPatch) -> None:
    subject.sink.record(event(0))
    subject.break_store(monkeypatch)
    with pytest.raises(AuditUnavailable):
        subject.sink.record_many([event(i) for i in range(1, 5)])
    monkeypatch.undo()
    assert [row["key_name"] for row in subject.stored()] == ["db.password.0"]


def test_a_store_that_cannot_write_raises_audit_unavailable(subject: Subject, monkeypatch: pytest.MonkeyPatch) -> None:
    subject.sink.record(event(0))
    subject.break_store(monkeypatch)
    with pytest.raises(AuditUnavailable):
        subject.sink.record(event(1))
    monkeypatch.undo()
    assert [row["key_name"] for row in subject.stored()] == ["db.password.0"]


# The chain: only where the adapter is an AuditTrail (not the in-memory sink, see the module docstring).


def test_an_empty_trail_verifies_clean(chained: Subject) -> None:
    assert chained.trail is not None
    report = chained.trail.verify_chain()
    assert (report.checked, report.problems) == (0, [])


def test_an_untouched_trail_verifies_clean(chained: Subject) -> None:
    assert chained.trail is not None
    other_zone = timezone(timedelta(hours=2, minutes=30))
    recorded = [*VARIED, event(5, time=T0.astimezone(other_zone)), event(6, detail={"z": 1, "a": {"y": 2, "b": 3}})]
    for e in recorded:
        chained.sink.record(e)
    report = chained.trail.verify_chain()
    assert (report.checked, report.problems) == (len(recorded), [])
    assert chained.stored()[5]["time"] == T0 and chained.stored()[5]["time"].tzinfo == UTC


def test_rows_that_break_the_chain_are_reported(chained: Subject) -> None:
    assert chained.trail is not None and chained.models is not None
    for e in VARIED[:3]:
        chained.sink.record(e)
    m = chained.models.audit
    last = m.select().order_by(m.seq.desc()).get()

    def append_raw(prev_hash: str, hash_: str) -> None:  # as raw access (not the sink) could append a row
        m.insert(time=last.time, actor="mallory", action=last.action, scope=last.scope, key_name=last.key_name,
                 version=last.version, outcome=last.outcome, request_id=None, client_address=None,
                 detail={"forged": True}, prev_hash=prev_hash, hash=hash_).execute()

    append_raw(last.hash, "sha256:" + "e" * 64)  # links on, but its contents do not match its hash
    report = chained.trail.verify_chain()
    assert report.checked == 4
    assert len(report.problems) == 1 and "do not match" in report.problems[0]
    chained.sink.record(event(9))  # the sink chains on from the bad row: only the bad row is reported
    assert len(chained.trail.verify_chain().problems) == 1
    append_raw(last.prev_hash, "sha256:" + "f" * 64)  # also points back into the middle of the chain
    report = chained.trail.verify_chain()
    assert report.checked == 6
    assert len(report.problems) == 3 and "does not follow" in report.problems[1]
