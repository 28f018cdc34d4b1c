"""`sprongus audit list|export|verify` as real processes on a SQLite vault: a readable table, JSON lines, exit 0 on
an intact trail and 7 on a tampered one, exit 8 when the database is down; never a value in any output."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from tests.e2e.conftest import Machine, one_error_line
from tests.e2e.test_cli_outages import closed_port

CANARY = "canary-51b2-Wombat-Narwhal-04ae"


def seeded(machine: Machine) -> None:
    machine.ok("secrets", "set", "project:p1", "db.password", "-", input=CANARY)
    machine.ok("secrets", "set", "system", "smtp.password", "-", input="other")
    machine.ok("secrets", "get", "project:p1", "db.password", "--reveal", "--yes")


def outputs(*procs: object) -> str:
    return "".join(p.stdout + p.stderr for p in procs)  # type: ignore[attr-defined]


def test_list_export_and_verify_name_keys_never_values(machine: Machine) -> None:
    seeded(machine)
    table = machine.ok("audit", "list")
    as_json = machine.ok("audit", "list", "--json", "--scope", "project:p1")
    exported = machine.ok("audit", "export")
    verified = machine.ok("audit", "verify")

    lines = table.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "ACTOR", "ACTION", "OUTCOME", "SCOPE", "KEY", "VERSION"]
    assert lines[1].split()[0] == "3" and "reveal" in lines[1] and "db.password" in lines[1]  # newest first
    events = json.loads(as_json.stdout)
    assert [(e["action"], e["keyName"]) for e in events] == [("reveal", "db.password"), ("create", "db.password")]
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3] and rows[0]["prevHash"] == "sha256:" + "0" * 64
    assert verified.stdout.startswith("ok, 3 events, newest checkpoint at seq 1 (")
    assert CANARY not in outputs(table, as_json, exported, verified)
    assert machine.ok("audit", "export", "--since", "1h").stdout == exported.stdout
    assert machine.ok("audit", "list", "--action", "create", "--json").stdout.count('"create"') == 2


def test_verify_finds_an_edited_row_and_a_cut_off_tail(machine: Machine) -> None:
    seeded(machine)
    db = machine.home / "vault.db"
    with closing(sqlite3.connect(db)) as conn, conn:  # the file's owner can drop the append-only triggers
        conn.execute("DROP TRIGGER audit_event_no_update")
        conn.execute("UPDATE audit_event SET actor = 'mallory' WHERE seq = 2")
    edited = machine.run("audit", "verify")
    assert edited.returncode == 7
    assert edited.stdout == "audit row 2: contents do not match its hash (edited)\n"
    assert "PROBLEMS FOUND" in edited.stderr and CANARY not in outputs(edited)

    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DROP TRIGGER audit_event_no_delete")
        conn.execute("DELETE FROM audit_event")  # every row, the checkpoint's included
    truncated = machine.run("audit", "verify", "--json")
    assert truncated.returncode == 7
    report = json.loads(truncated.stdout)
    assert report["ok"] is False and report["events"] == 0
    assert report["problems"] == ["audit checkpoint at seq 1: its row is missing (rows deleted): the trail holds 0 "
                                  "events up to it, the checkpoint counted 1"]


def test_bad_filters_are_exit_2_naming_the_field(machine: Machine) -> None:
    for args, field in ((["--action", "teleport"], "action"), (["--since", "someday"], "since"),
                        (["--limit", "0"], "limit"), (["--scope", "team:x"], "scope")):
        proc = machine.run("audit", "list", *args)
        assert proc.returncode == 2, proc.stderr
        one_error_line(proc.stderr, naming=f"{field}:")


def test_a_database_that_does_not_answer_is_exit_8_not_7(machine: Machine) -> None:
    env = {"SPRONGUS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/sprongus",
           "SPRONGUS_KEY_PROVIDER": "env", "SPRONGUS_MASTER_KEYS": "k1:" + "A" * 43 + "="}
    for command in (["audit", "verify"], ["audit", "list"], ["audit", "export"]):
        proc = machine.run(*command, env=env)
        assert proc.returncode == 8, (command, proc.stderr)
        one_error_line(proc.stderr, naming="database unavailable")
