"""Group commit of audit rows: concurrent reveals share write transactions, and still every reveal is audited
before its answer, exactly once, in one unbroken chain; a failed group fails closed for each of its callers."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprongus.adapters.peewee.audit_group import GroupCommit
from sprongus.domain.errors import AuditUnavailable, StorageUnavailable
from sprongus.domain.records import AuditEvent
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.integration.stack import Stack, alice, build, environment, in_threads, new_key, sqlite_url
from tests.integration.test_audit_trail import Raw, audit_rows
from tests.pg import PgDatabase

SCOPE = Scope.user("alice")
CANARY = "canary-group-commit-7f3a"
THREADS, REVEALS = 8, 40


@pytest.fixture(params=["sqlite", "postgres"])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Stack, Raw]]:
    roomy = {"SPRONGUS_RATE_LIMIT_REVEAL": "100000/minute"}  # the reveals here are many, and all alice's
    if request.param == "sqlite":
        made = build({**environment(sqlite_url(tmp_path), new_key()), **roomy})
        raw = Raw("sqlite", tmp_path / "vault.db")
    else:
        pg: PgDatabase = request.getfixturevalue("pg_db")
        made, raw = build({**environment(pg.app_url, new_key()), **roomy}), Raw("postgres", pg.admin_url)
    try:
        yield made, raw
    finally:
        made.close()


def test_concurrent_reveals_are_each_audited_once_in_one_chain(vault: tuple[Stack, Raw]) -> None:
    made, raw = vault
    made.secrets.set(alice(), SCOPE, "token", SecretValue(CANARY))
    before = len(audit_rows(raw))
    group_sizes: list[int] = []
    write = made.audit._group._write  # count the transactions: concurrency must share some

    def counting(groups: list[Any]) -> None:
        group_sizes.append(len(groups))
        write(groups)

    made.audit._group._write = counting

    def reveal(n: int) -> None:
        for _ in range(REVEALS):
            made.secrets.get(alice(), SCOPE, "token", reveal=True)

    assert in_threads(THREADS, reveal) == []
    rows = audit_rows(raw)[before:]
    reveals = [r for r in rows if r[2] == "reveal"]
    assert len(reveals) == THREADS * REVEALS  # every reveal: one row, none twice, none lost
    assert sum(group_sizes) == THREADS * REVEALS
    assert len(group_sizes) < THREADS * REVEALS, "no two reveals ever shared a transaction"
    assert made.audit.verify_chain().problems == []  # one unbroken chain: each row hashes onto the one before it
    assert CANARY not in repr(rows)


def test_a_group_that_cannot_be_written_fails_every_caller_and_writes_nothing(vault: tuple[Stack, Raw]) -> None:
    made, raw = vault
    made.secrets.set(alice(), SCOPE, "token", SecretValue(CANARY))
    before = audit_rows(raw)
    write = made.audit._group._write
    calls = 0

    def down(groups: list[Any]) -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk I/O error")

    made.audit._group._write = down
    refused: list[int] = []

    def reveal(n: int) -> None:
        try:
            made.secrets.get(alice(), SCOPE, "token", reveal=True)
        except AuditUnavailable as exc:
            assert CANARY not in str(exc)
            refused.append(n)

    assert in_threads(THREADS, reveal) == []
    assert sorted(refused) == list(range(THREADS))  # fail closed: no caller got the value
    made.audit._group._write = write
    assert audit_rows(raw)[: len(before)] == before
    assert [r for r in audit_rows(raw)[len(before):] if r[2] == "reveal" and r[6] == "success"] == []
    assert made.secrets.get(alice(), SCOPE, "token", reveal=True).value is not None  # and it recovers


def event(n: int) -> AuditEvent:
    return AuditEvent(None, f"actor{n}", None, None, None, None, None, None, None, {})  # type: ignore[arg-type]


def test_one_bad_caller_in_a_group_does_not_fail_the_others() -> None:
    written: list[list[str]] = []
    release = threading.Event()

    def write(groups: list[Any]) -> None:
        actors = [e.actor for events in groups for e in events]
        if "actor0" in actors and len(written) == 0 and not release.is_set():
            release.wait(5)  # hold the first transaction so the others queue behind it and form one group
        if "actor3" in actors:
            raise ValueError("a row that cannot be stored")
        written.append(actors)

    group = GroupCommit(write, lambda exc: False)
    failed: dict[int, BaseException] = {}

    def append(n: int) -> None:
        if n:
            while not group._leading:  # actor0 leads; the others queue behind it
                pass
        try:
            group.append([event(n)])
        except ValueError as exc:
            failed[n] = exc

    threads = [threading.Thread(target=append, args=(n,)) for n in range(6)]
    threads[0].start()
    for thread in threads[1:]:
        thread.start()
    while len(group._queue) < 5:
        pass
    release.set()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads)
    assert list(failed) == [3]
    flat = sorted(a for actors in written for a in actors)
    assert flat == ["actor0", "actor1", "actor2", "actor4", "actor5"]


def test_the_lead_passes_on_when_the_leader_fails() -> None:
    """A leader whose own transaction fails still hands the queue to the next caller: nobody waits forever."""
    calls: list[int] = []
    gate = threading.Event()

    def write(groups: list[Any]) -> None:
        calls.append(len(groups))
        if len(calls) == 1:
            gate.wait(5)
            raise RuntimeError("first transaction failed")

    group = GroupCommit(write, lambda exc: False)
    outcome: dict[str, str] = {}

    def first() -> None:
        try:
            group.append([event(0)])
        except RuntimeError:
            outcome["first"] = "failed"

    def second() -> None:
        group.append([event(1)])
        outcome["second"] = "written"

    a = threading.Thread(target=first)
    a.start()
    while not calls:
        pass
    b = threading.Thread(target=second)
    b.start()
    while not group._queue:
        pass
    gate.set()
    a.join(10)
    b.join(10)
    assert outcome == {"first": "failed", "second": "written"}
    assert not group._leading and not group._queue


def test_an_outage_fails_the_whole_group_at_once() -> None:
    """Caller by caller, each would wait out the outage again (a busy timeout each, one after the other)."""
    attempts: list[int] = []
    hold = threading.Event()

    def write(groups: list[Any]) -> None:
        attempts.append(len(groups))
        if len(attempts) == 1:
            hold.wait(5)  # the first caller's transaction: the others queue behind it
        raise StorageUnavailable("the vault is busy: no write turn within the busy timeout")

    group = GroupCommit(write, lambda exc: isinstance(exc, StorageUnavailable))
    failed: list[int] = []

    def append(n: int) -> None:
        try:
            group.append([event(n)])
        except StorageUnavailable:
            failed.append(n)

    first = threading.Thread(target=append, args=(0,))
    first.start()
    while not attempts:
        pass
    others = [threading.Thread(target=append, args=(n,)) for n in range(1, 5)]
    for thread in others:
        thread.start()
    while len(group._queue) < 4:
        pass
    hold.set()
    for thread in (first, *others):
        thread.join(10)
    assert sorted(failed) == [0, 1, 2, 3, 4]
    assert attempts == [1, 4]  # the queued four: one attempt together, no retry one by one


def test_a_forked_child_does_not_wait_for_the_parents_leader(tmp_path: Path) -> None:
    release, parent = threading.Event(), os.getpid()

    def write(groups: list[Any]) -> None:
        if os.getpid() == parent:
            release.wait(5)  # the parent's leader is busy writing when the fork happens

    group = GroupCommit(write, lambda exc: False)
    leader = threading.Thread(target=group.append, args=([event(0)],))
    leader.start()
    while not group._leading:
        pass
    pid = os.fork()
    if pid == 0:  # the child: the parent's leader thread does not exist here
        try:
            signal.alarm(5)  # a child waiting for a leader it does not have would hang: the alarm ends it (exit != 0)
            group.append([event(1)])
            os._exit(0)
        except BaseException:
            os._exit(1)
    release.set()
    leader.join(10)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
