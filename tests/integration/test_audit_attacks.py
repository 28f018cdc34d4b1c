"""An attacker with the database owner's rights against `audit verify` (docs/operations.md#5.4), past what
test_audit_reading.py tries: every checkpoint deleted, a checkpoint's MAC replayed onto another, and an app-role
login forging checkpoints on Postgres."""

from __future__ import annotations

import base64
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_audit_reading import Vault, history, make_vault, vault  # noqa: F401  (fixtures)
from tests.pg import fresh_database


def test_deleting_every_checkpoint_is_found(vault: Vault) -> None:  # noqa: F811  (the fixture)
    """The walk checked "N events after the newest checkpoint" only when one was left: with every checkpoint gone
    (then the tail cut at will) verify said `ok ... no checkpoint yet` over 1,005 events."""
    history(vault)
    vault.drop_guards()
    vault.raw("DELETE FROM audit_checkpoint")
    vault.raw("DELETE FROM audit_event WHERE seq > 1002")  # and the tail: nothing else can show it now
    report = vault.verify()
    assert report.problems == ["1002 events and no audit checkpoint: one is written at least every 1,000 events, "
                               "so the checkpoints were deleted (or could not be signed)"]


def test_a_young_trail_without_checkpoints_is_not_a_finding(make_vault: object) -> None:  # noqa: F811
    """Below the rule's threshold nothing can be said (the documented limit): no false alarm."""
    young = make_vault(SPRONGUS_HMAC_KEYS="hk1:" + "A" * 43 + "=")  # type: ignore[operator]
    young.events(5)
    young.drop_guards()
    young.raw("DELETE FROM audit_checkpoint")
    assert young.verify().problems == []


def test_a_mac_copied_onto_another_checkpoint_is_found(vault: Vault) -> None:  # noqa: F811
    history(vault)
    vault.drop_guards()
    vault.raw("DELETE FROM audit_event WHERE seq >= 900")
    key_id, mac = vault.checkpoints()[0][3:]  # seq 1's, signed
    vault.raw("DELETE FROM audit_checkpoint WHERE seq > 1")
    head, when = vault.raw("SELECT hash, time FROM audit_event WHERE seq = 899")[0]
    vault.raw("INSERT INTO audit_checkpoint (seq, count, head_hash, time, key_id, mac) VALUES (?, ?, ?, ?, ?, ?)",
              (899, 899, head, when, key_id, mac))  # seq 1's valid MAC, replayed
    assert vault.verify().problems == [
        "audit checkpoint at seq 899: its MAC does not match (forged or altered checkpoint)"]


def test_the_app_role_cannot_delete_or_rewrite_checkpoints_and_its_forgeries_show(tmp_path: Path) -> None:
    """The API's login may INSERT checkpoints (it writes them): it cannot UPDATE or DELETE one, and what it inserts
    without the key is caught by verify."""
    hmac = "hk1:" + base64.b64encode(bytes(range(32, 64))).decode()
    with fresh_database(migrated=True) as pg:
        owner = Vault("postgres", pg.maintenance_url, pg.admin_url, tmp_path, SPRONGUS_HMAC_KEYS=hmac)
        try:
            owner.events(3)
            with psycopg.connect(pg.app_url, autocommit=True) as app:
                for sql in ("DELETE FROM audit_checkpoint", "UPDATE audit_checkpoint SET count = 1",
                            "DELETE FROM audit_event", "UPDATE audit_event SET actor = 'x'"):
                    with pytest.raises(psycopg.Error):
                        app.execute(sql)
                row = app.execute("SELECT hash, time FROM audit_event ORDER BY seq DESC LIMIT 1").fetchone()
                assert row is not None
                app.execute("INSERT INTO audit_checkpoint (seq, count, head_hash, time, key_id, mac) "
                            "VALUES (3, 3, %s, %s, 'env:hk1', %s)", (row[0], row[1], "A" * 44))
            assert owner.verify().problems == [
                "audit checkpoint at seq 3: its MAC does not match (forged or altered checkpoint)"]
        finally:
            owner.close()
