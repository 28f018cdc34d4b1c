"""One stored row that does not decode (broken base64, a bad timestamp, meta that is no object) is an integrity
error for that row only: reveal exits 7, `secrets list` still lists the scope (the row by name, marked), and
`keys verify` reports every bad row instead of stopping at the first.

Release 1 exited 1 ("unexpected") on such a row, failed the whole listing, and let `keys verify` die on it, so
another row's tampering further on went unreported.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, Vault, one_error_line, tamper_ciphertext
from tests.harness import CANARY

CORRUPTIONS = [
    ("ciphertext", "%%%% not base64 %%%%"),
    ("nonce", "abc"),  # bad padding
    ("dek_wrapped", "AAAA AAAA\n"),
    ("updated_at", "yesterday"),
    ("created_at", "2026-13-45T99:00:00+00:00"),
    ("last_rotated_at", "soon"),
    ("meta", "[1, 2]"),  # valid JSON (the CHECK allows it) but no object
    ("version", "two"),
]


def corrupt(db: Path, key: str, column: str, text: str) -> None:
    """Overwrite one column of one row with text, as bitrot, a bad restore or a hand edit would."""
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f"UPDATE secret_kv SET {column} = ? WHERE key_name = ?", (text, key))


@pytest.fixture
def three(vault: Vault) -> Vault:
    for key in ("a", "bad", "c"):
        vault.set(key, CANARY + key)
    return vault


@pytest.mark.parametrize(("column", "text"), CORRUPTIONS, ids=[c for c, _ in CORRUPTIONS])
def test_a_corrupt_row_is_exit_7_for_that_row_and_the_rest_still_works(three: Vault, column: str,
                                                                       text: str) -> None:
    corrupt(three.db, "bad", column, text)
    for args in (["--reveal", "--yes"], [], ["--json"]):
        result = three("secrets", "get", SCOPE, "bad", *args)
        assert result.exit_code == 7, (args, result.stdout, result.stderr)
        one_error_line(result.stderr, naming="integrity")
        assert result.stdout == "" and CANARY not in result.stderr
    assert three.reveal("a") == (CANARY + "a").encode() and three.reveal("c") == (CANARY + "c").encode()

    listed = three.ok("secrets", "list", SCOPE)
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["a", "bad", "c"]
    assert "DAMAGED" in lines[2] and "keys verify" in listed.stderr
    items = json.loads(three.ok("secrets", "list", SCOPE, "--json").stdout)["items"]
    assert [(i["keyName"], i.get("damaged", False)) for i in items] == [("a", False), ("bad", True), ("c", False)]
    exported = json.loads(three.ok("secrets", "export", SCOPE).stdout)  # metadata: the name, like list
    assert [i["keyName"] for i in exported["items"]] == ["a", "bad", "c"]
    assert CANARY not in listed.stdout + listed.stderr


def test_verify_reports_every_bad_row_and_unset_clears_one(three: Vault) -> None:
    corrupt(three.db, "a", "created_at", "not a time")
    tamper_ciphertext(three.db, "c")  # after the corrupt row in scan order or not: both must be reported

    result = three("keys", "verify", "--json")
    assert result.exit_code == 7
    report = json.loads(result.stdout)
    reasons = {f["keyName"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"a", "c"} and report["checked"] == 3
    assert "created_at" in reasons["a"] and "not a time" not in result.stdout
    assert all(f["scope"] == SCOPE for f in report["failures"])

    three.ok("secrets", "unset", SCOPE, "a")  # a row that does not decode can still be deleted
    left = json.loads(three("keys", "verify", "--json").stdout)
    assert [f["keyName"] for f in left["failures"]] == ["c"]


def test_writing_over_a_corrupt_row_is_refused_not_guessed(three: Vault) -> None:
    corrupt(three.db, "bad", "updated_at", "garbage")
    result = three("secrets", "set", SCOPE, "bad", "-", input=b"new\n")
    assert result.exit_code == 7  # its version and meta are unknown: unset it first
    one_error_line(result.stderr, naming="integrity")
    assert three("secrets", "rotate", SCOPE, "bad").exit_code == 7


def test_a_real_process_exits_7_and_lists_the_scope(machine: Machine) -> None:
    for key in ("a", "bad"):
        machine.ok("secrets", "set", SCOPE, key, "-", input=CANARY)
    corrupt(machine.home / "vault.db", "bad", "ciphertext", "%%%")

    revealed = machine.run("secrets", "get", SCOPE, "bad", "--reveal", "--yes")
    assert revealed.returncode == 7 and revealed.stdout == ""
    one_error_line(revealed.stderr, naming="integrity")
    listed = machine.ok("secrets", "list", SCOPE, "--json")
    assert [i["keyName"] for i in json.loads(listed.stdout)["items"]] == ["a", "bad"]
    verified = machine.run("keys", "verify")
    assert verified.returncode == 7 and f"{SCOPE} bad: stored row does not decode (ciphertext)" in verified.stdout
    for proc in (revealed, listed, verified):
        assert CANARY not in proc.stdout + proc.stderr


def test_a_row_whose_name_does_not_decode_fails_the_listing_as_integrity_not_a_loop(three: Vault) -> None:
    """Such a row cannot be named or paged past: the listing and `verify` say integrity (7), nothing hangs."""
    with closing(sqlite3.connect(three.db)) as conn, conn:
        conn.execute("UPDATE secret_kv SET key_name = X'FF00' WHERE key_name = 'bad'")
    for args in (["secrets", "list", SCOPE], ["keys", "verify"]):
        result = three(*args)
        assert result.exit_code == 7, (args, result.stdout, result.stderr)
        one_error_line(result.stderr, naming="integrity")
    assert three.reveal("a") == (CANARY + "a").encode()  # rows read by their own name are untouched
