"""The readable audit trail on real SQLite and Postgres: filters, export, checkpoints (every 1,000 events, after
5 minutes, in the event's transaction, no extra query between them) and what `verify` finds when an attacker with
the database owner's rights edits, deletes, truncates or forges (triggers dropped, raw SQL)."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dependency_injector import providers

from sprongus.adapters.memory import ManualClock
from sprongus.domain.audit_verify import AuditTrailReport
from sprongus.domain.errors import PermissionDenied, StorageUnavailable, ValidationError
from sprongus.domain.principal import Principal
from sprongus.domain.records import AuditAction, Outcome
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import PORTS, Container
from sprongus.entrypoints.profiles import container_config
from sprongus.service.audit_query import AuditQuery
from tests.pg import fresh_database

MASTER = "mk1:" + base64.b64encode(bytes(range(32))).decode()
HMAC = "hk1:" + base64.b64encode(bytes(range(32, 64))).decode()
OWNER = Principal.local_owner("ops")
P1 = Scope.parse("project:p1")


class Vault:
    """A container on a real database with a manual clock, and raw SQL as the database's owner would have it."""

    def __init__(self, engine: str, url: str, raw_target: Any, tmp: Path, **settings: str) -> None:
        self.engine, self.raw_target, self.clock = engine, raw_target, ManualClock()
        env = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp), "SPRONGUS_DATABASE_URL": url,
               "SPRONGUS_MASTER_KEYS": MASTER, **settings}
        self.container = Container()
        self.container.config.from_dict(container_config(Settings.from_mapping(env)))
        self.container.clock.override(providers.Object(self.clock))
        for port in PORTS:
            getattr(self.container, port)()
        self.reader = self.container.audit_reader()
        self.auditor = self.container.service_deps().auditor

    def events(self, n: int, scope: Scope | None = P1, actor: str = "ops", action: AuditAction = AuditAction.REVEAL,
               key: str = "db.password") -> None:
        who = Principal(actor, owner=True)
        for _ in range(n):
            self.auditor.record(who, action, scope, key, 1)

    def raw(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.engine == "sqlite":
            with closing(sqlite3.connect(self.raw_target)) as conn, conn:
                return conn.execute(sql, params).fetchall()
        with psycopg.connect(self.raw_target, autocommit=True) as pg:
            cur = pg.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def drop_guards(self) -> None:
        """What an attacker with the owner's rights does first: the append-only triggers go."""
        if self.engine == "sqlite":
            for name in ("audit_event_no_update", "audit_event_no_delete", "audit_checkpoint_no_update",
                         "audit_checkpoint_no_delete"):
                self.raw(f"DROP TRIGGER {name}")
        else:
            self.raw("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
            self.raw("ALTER TABLE audit_checkpoint DISABLE TRIGGER audit_checkpoint_append_only")
            self.raw("ALTER TABLE audit_checkpoint DROP CONSTRAINT audit_checkpoint_event")

    def checkpoints(self) -> list[tuple[Any, ...]]:
        return self.raw("SELECT seq, count, head_hash, key_id, mac FROM audit_checkpoint ORDER BY seq")

    def verify(self) -> AuditTrailReport:
        return self.reader.verify(OWNER)

    def close(self) -> None:
        models = self.container.database()
        if models is not None:
            models.db.close()


@pytest.fixture(params=["sqlite", "postgres"])
def make_vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: list[Vault] = []
    with (fresh_database(migrated=True) if request.param == "postgres" else _nothing()) as pg:
        def make(**settings: str) -> Vault:
            if pg is None:
                db = tmp_path / f"v{len(made)}" / "vault.db"
                db.parent.mkdir(mode=0o700)
                vault = Vault("sqlite", f"sqlite:///{db}", db, db.parent, **settings)
            else:
                vault = Vault("postgres", pg.maintenance_url, pg.admin_url, tmp_path, **settings)
            made.append(vault)
            return vault
        yield make
        for vault in made:
            vault.close()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def vault(make_vault: Any) -> Vault:
    return make_vault(SPRONGUS_HMAC_KEYS=HMAC)


def test_a_checkpoint_at_least_every_thousand_events_signed_in_the_events_transaction(vault: Vault) -> None:
    vault.events(1001)
    vault.events(998)
    points = vault.checkpoints()
    assert [(seq, count) for seq, count, *_ in points] == [(1, 1), (1001, 1001)]
    assert all(key_id == "env:hk1" and mac for *_, key_id, mac in points)
    head = vault.raw("SELECT hash FROM audit_event WHERE seq = 1001")[0][0]
    assert points[1][2] == head
    report = vault.verify()
    assert (report.checked, report.problems, report.checkpoints, report.macs_checked) == (1999, [], 2, 2)
    vault.events(1)
    assert [seq for seq, *_ in vault.checkpoints()] == [1, 1001]  # 999 events after the newest one
    vault.events(1)
    assert [seq for seq, *_ in vault.checkpoints()] == [1, 1001, 2001]


def test_a_checkpoint_after_five_minutes_by_the_services_clock(vault: Vault) -> None:
    vault.events(1)
    vault.clock.advance(299)
    vault.events(1)
    assert [seq for seq, *_ in vault.checkpoints()] == [1]
    vault.clock.advance(1)
    vault.events(1)
    assert [(seq, count) for seq, count, *_ in vault.checkpoints()] == [(1, 1), (3, 3)]
    assert vault.verify().problems == []


def test_between_checkpoints_an_event_costs_no_checkpoint_query(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.events(2)  # the process has read the newest checkpoint once
    db = vault.container.database().db
    seen: list[str] = []

    def spying(real: Any) -> Any:
        def spy(sql: str, *args: Any, **kwargs: Any) -> Any:
            seen.append(sql)
            return real(sql, *args, **kwargs)
        return spy

    # On Postgres an event's row waits for its COMMIT (adapters/peewee/send_later.py): both ways are watched.
    for way in ("execute_sql", "execute_later"):
        if hasattr(db, way):
            monkeypatch.setattr(db, way, spying(getattr(db, way)))
    vault.events(5)
    assert seen and not any("audit_checkpoint" in sql for sql in seen), seen


def test_a_checkpoint_rolls_back_with_its_event(vault: Vault) -> None:
    uow = vault.container.unit_of_work()
    with pytest.raises(RuntimeError), uow.transaction(OWNER):
        vault.events(1)
        raise RuntimeError("the action failed after its audit row")
    assert vault.checkpoints() == [] and vault.raw("SELECT count(*) FROM audit_event")[0][0] == 0
    vault.events(1)
    assert [seq for seq, *_ in vault.checkpoints()] == [vault.raw("SELECT max(seq) FROM audit_event")[0][0]]
    assert vault.verify().problems == []


def history(vault: Vault) -> None:
    """1,005 events: checkpoints at seq 1 and 1001."""
    vault.events(1005)


def test_an_untouched_trail_verifies(vault: Vault) -> None:
    history(vault)
    report = vault.verify()
    assert report.problems == [] and report.checked == 1005
    assert report.newest_checkpoint is not None and report.newest_checkpoint.seq == 1001


def test_an_edited_row_is_found(vault: Vault) -> None:
    history(vault)
    vault.drop_guards()
    vault.raw("UPDATE audit_event SET actor = 'mallory' WHERE seq = 40")
    assert vault.verify().problems == ["audit row 40: contents do not match its hash (edited)"]


def test_a_deleted_middle_row_is_found_by_the_chain_and_the_checkpoint(vault: Vault) -> None:
    history(vault)
    vault.drop_guards()
    vault.raw("DELETE FROM audit_event WHERE seq = 500")
    problems = vault.verify().problems
    assert problems == ["audit row 501: does not follow the previous row (deleted or reordered)",
                        "audit checkpoint at seq 1001: counted 1001 events up to it, the trail holds 1000 (rows "
                        "deleted or inserted before it)"]


def test_a_deleted_row_with_the_chain_rebuilt_is_still_found_by_the_checkpoint(vault: Vault) -> None:
    """The chain has no key, so an attacker can rebuild it after a deletion; the checkpoint's count and head hash,
    under a MAC they cannot make, still show it."""
    from sprongus.domain.audit_log import chain_hash

    history(vault)
    vault.drop_guards()
    vault.raw("DELETE FROM audit_event WHERE seq = 500")
    rows = vault.reader.export(OWNER, AuditQuery())
    prev = None
    vault.raw("UPDATE audit_event SET hash = 'tmp-' || seq WHERE seq > 500")  # hash is UNIQUE: free the values
    for row in list(rows):
        if row.seq < 500:
            prev = row.hash
            continue
        assert prev is not None
        new = chain_hash(prev, row.fields())
        vault.raw("UPDATE audit_event SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new, row.seq))
        prev = new
    problems = vault.verify().problems
    assert problems == ["audit checkpoint at seq 1001: counted 1001 events up to it, the trail holds 1000 (rows "
                        "deleted or inserted before it)"]


def test_a_tail_cut_off_before_the_newest_checkpoint_is_found(vault: Vault) -> None:
    history(vault)
    vault.drop_guards()
    vault.raw("DELETE FROM audit_event WHERE seq >= 900")
    report = vault.verify()
    assert report.problems == ["audit checkpoint at seq 1001: its row is missing (rows deleted): the trail holds "
                               "899 events up to it, the checkpoint counted 1001"]
    assert report.checked == 899


@pytest.mark.parametrize("forgery", ["bad-mac", "unknown-key", "unsigned"])
def test_a_forged_checkpoint_over_a_truncated_tail_is_found(vault: Vault, forgery: str) -> None:
    """The attacker cuts the tail, deletes the checkpoints that would show it and writes one for the new head."""
    history(vault)
    vault.drop_guards()
    vault.raw("DELETE FROM audit_event WHERE seq >= 900")
    vault.raw("DELETE FROM audit_checkpoint WHERE seq > 1")
    head, when = vault.raw("SELECT hash, time FROM audit_event WHERE seq = 899")[0]
    key_id, mac = {"bad-mac": ("env:hk1", base64.b64encode(b"x" * 32).decode()),
                   "unknown-key": ("env:hk9", base64.b64encode(b"x" * 32).decode()),
                   "unsigned": (None, None)}[forgery]
    vault.raw("INSERT INTO audit_checkpoint (seq, count, head_hash, time, key_id, mac) VALUES (?, ?, ?, ?, ?, ?)",
              (899, 899, head, when, key_id, mac))
    expected = {"bad-mac": "its MAC does not match (forged or altered checkpoint)",
                "unknown-key": "signed with key env:hk9, which this vault does not know (forged checkpoint)",
                "unsigned": "not signed, though an earlier checkpoint is (forged checkpoint)"}[forgery]
    assert vault.verify().problems == [f"audit checkpoint at seq 899: {expected}"]


def test_checkpoints_deleted_behind_the_head_are_found_by_their_absence(vault: Vault) -> None:
    history(vault)
    vault.drop_guards()
    vault.raw("DELETE FROM audit_checkpoint WHERE seq > 1")
    assert vault.verify().problems == [
        "1004 events after the newest audit checkpoint (seq 1): one is written at least every 1,000 events, so "
        "newer checkpoints were deleted (or could not be signed)"]


def test_without_a_value_hmac_key_checkpoints_are_unsigned_and_verify_says_so(make_vault: Any) -> None:
    vault = make_vault()  # env master key, no SPRONGUS_HMAC_KEYS: the vault makes its HMAC key on the first write
    vault.events(3)
    report = vault.verify()
    assert report.problems == [] and report.macs_checked == 0
    assert report.notes == ("the vault has no value-HMAC key yet (no secret written): checkpoints are not signed, "
                            "MACs not checked",)
    vault.container.secret_ops().set(OWNER, P1, "db.password", SecretValue("s3cret-value"))
    vault.clock.advance(300)
    vault.events(1)
    key_ids = [key_id for *_, key_id, _mac in vault.checkpoints()]
    assert key_ids[0] is None and key_ids[-1] is not None and key_ids[-1].startswith("db:h1-")
    report = vault.verify()
    assert report.problems == [] and report.macs_checked == 1
    assert report.notes == ("1 checkpoint(s) from before the vault had a value-HMAC key are not signed",)


def test_list_filters_and_pages(vault: Vault) -> None:
    vault.events(3, scope=P1, actor="alice", action=AuditAction.REVEAL, key="db.password")
    vault.clock.advance(3600)
    vault.events(2, scope=Scope.parse("system"), actor="bob", action=AuditAction.CREATE, key="smtp.password")
    vault.auditor.record(Principal("anonymous"), AuditAction.AUTHENTICATE, None, None, None, Outcome.DENIED)

    def seqs(**query: str | None) -> list[int]:
        return [e.seq for e in vault.reader.list(OWNER, AuditQuery(**query), None, 100).items]

    assert seqs() == [6, 5, 4, 3, 2, 1]  # newest first
    assert seqs(scope="project:p1") == [3, 2, 1]
    assert seqs(key="smtp.password") == [5, 4]
    assert seqs(actor="anonymous") == [6]
    assert seqs(action="create") == [5, 4]
    assert seqs(since="2026-01-01T00:30:00Z") == [6, 5, 4]
    assert seqs(until="2026-01-01T00:30:00+00:00") == [3, 2, 1]
    assert seqs(since="30m") == [6, 5, 4]  # an age, by the service's clock
    first = vault.reader.list(OWNER, AuditQuery(), None, 4)
    rest = vault.reader.list(OWNER, AuditQuery(), first.next_cursor, 4)
    assert [e.seq for e in first.items + rest.items] == [6, 5, 4, 3, 2, 1] and rest.next_cursor is None
    for field, query in (("action", AuditQuery(action="teleport")), ("scope", AuditQuery(scope="team:x")),
                         ("since", AuditQuery(since="yesterday")), ("key", AuditQuery(key="1bad"))):
        with pytest.raises(ValidationError) as caught:
            vault.reader.list(OWNER, query)
        assert caught.value.field == field
    with pytest.raises(PermissionDenied):
        vault.reader.verify(Principal("alice", owner=False))


def test_export_streams_every_event_oldest_first_in_pages(make_vault: Any) -> None:
    vault = make_vault(SPRONGUS_HMAC_KEYS=HMAC, SPRONGUS_BATCH_SIZE="7")
    vault.events(30)
    exported = list(vault.reader.export(OWNER, AuditQuery()))
    assert [e.seq for e in exported] == list(range(1, 31))
    assert [e.seq for e in vault.reader.export(OWNER, AuditQuery(since="2026-01-01T00:00:00Z"))] == list(range(1, 31))
    assert exported[0].to_dict()["time"] == "2026-01-01T00:00:00.000000Z"


def test_an_unreachable_postgres_is_an_outage_not_a_finding(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    vault = Vault("postgres", f"postgresql://postgres@127.0.0.1:{port}/sprongus", None, tmp_path,
                  SPRONGUS_HMAC_KEYS=HMAC)
    with pytest.raises(StorageUnavailable):
        vault.verify()
    with pytest.raises(StorageUnavailable):
        vault.reader.list(OWNER, AuditQuery())


def test_events_appended_during_a_verify_raise_no_false_alarm(make_vault: Any) -> None:
    """Found by an attack review: verify read the checkpoints once, then rows until the table ended, so events the
    API appended meanwhile (a checkpoint among them) were counted against the older checkpoint and reported as
    "newer checkpoints were deleted": a false page of the on-call. The walk now ends at the head it began with."""
    vault = make_vault(SPRONGUS_HMAC_KEYS=HMAC)
    vault.events(1997)  # checkpoints at 1 and 1001: 996 events after the newest
    trail = vault.container.storage().audit_trail
    real_rows = trail._rows

    def rows_with_appends(batch: int, *bound: int) -> Iterator[Any]:
        for n, row in enumerate(real_rows(batch, *bound)):
            if n == 999:  # another worker serves 5 reveals while verify walks; the 4th is due a checkpoint
                vault.events(5)
            yield row

    trail._rows = rows_with_appends
    try:
        during = vault.verify()
    finally:
        trail._rows = real_rows
    assert during.problems == [] and during.checked == 1997, during.problems
    assert [seq for seq, *_ in vault.checkpoints()] == [1, 1001, 2001]  # the appends did write their checkpoint
    after = vault.verify()
    assert after.problems == [] and after.checked == 2002


def test_a_forged_checkpoint_past_every_row_stops_no_event_and_is_reported(vault: Vault) -> None:
    """Found by an attack review: one checkpoint row with a seq past every event (the app role may insert one on
    Postgres) made every later append fail (int(None)): reveals, writes and refusal rows refused for good."""
    vault.events(3)
    vault.drop_guards()  # on Postgres the app role can no longer insert one (0008): an owner still could
    vault.raw("INSERT INTO audit_checkpoint (seq, count, head_hash, time) VALUES (4000000000000000000, 1, 'x', "
              "'2000-01-01T00:00:00Z')")
    vault.clock.advance(301)  # a checkpoint is due by time
    vault.events(2)  # recorded
    assert any("4000000000000000000" in problem for problem in vault.verify().problems)


APP_EVENT = ("INSERT INTO audit_event ({seq}time, actor, action, outcome, prev_hash, hash) VALUES ({value}now(), "
             "'mallory', 'reveal', 'success', 'sha256:x', 'sha256:y')")


def test_the_app_role_may_not_choose_an_events_seq_nor_checkpoint_a_missing_one() -> None:
    """Found by an attack review: the app role inserted an event at seq 4 * 10^18, which every later append then
    chained to (each reported "does not follow" from then on), or a checkpoint past every row."""
    with fresh_database(migrated=True) as pg, psycopg.connect(pg.app_url, autocommit=True) as app:
        for sql, params in ((APP_EVENT.format(seq="seq, ", value="%s, "), (4 * 10**18,)),
                            ("INSERT INTO audit_checkpoint (seq, count, head_hash, time) VALUES (%s, 1, 'x', now())",
                             (4 * 10**18,))):
            with pytest.raises(psycopg.Error):
                app.execute(sql, params)
        # Found by review: a temp table of the same name, whose sequence the app role may move, stood in for it.
        app.execute("CREATE TEMP TABLE audit_event (seq bigserial)")
        app.execute("SELECT setval(pg_get_serial_sequence('audit_event', 'seq'), %s)", (4 * 10**18 - 1,))
        app.execute("SELECT nextval(pg_get_serial_sequence('audit_event', 'seq'))")
        with pytest.raises(psycopg.Error):
            app.execute(APP_EVENT.replace("INSERT INTO audit_event", "INSERT INTO public.audit_event").format(
                seq="seq, ", value="%s, "), (4 * 10**18,))
        app.execute("DROP TABLE pg_temp.audit_event")
        app.execute(APP_EVENT.format(seq="", value=""))  # a row whose seq the sequence drew goes in, as the API's do
        (count,) = app.execute("SELECT count(*) FROM audit_event WHERE seq < 1000").fetchone() or (0,)
        assert count == 1


def test_a_checkpoint_with_a_made_up_count_is_not_built_on(vault: Vault) -> None:
    """Found by review: the app role may insert a checkpoint at an existing seq (0008 requires only that), unsigned
    and with a made-up count; the next signed checkpoint added its events to that count, and so did every one after
    it, so verify reported each of the vault's own checkpoints as "rows deleted". Only the forged one is reported."""
    vault.events(5)
    (head,) = vault.raw("SELECT max(seq) FROM audit_event")[0]
    (head_hash,) = vault.raw("SELECT hash FROM audit_event WHERE seq = ?", (head,))[0]
    vault.raw("INSERT INTO audit_checkpoint (seq, count, head_hash, time) VALUES (?, 1, ?, '2000-01-01T00:00:00Z')",
              (head, head_hash))
    vault.events(1200)
    problems = vault.verify().problems
    assert problems and all(f"seq {head}:" in problem for problem in problems), problems
    assert [seq for seq, *_ in vault.checkpoints()][-1] > head  # the vault went on checkpointing
