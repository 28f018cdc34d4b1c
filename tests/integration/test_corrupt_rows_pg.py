"""Postgres rows that do not decode, where the column types allow it (meta JSONB that is no object, an owner id
outside the rules): an integrity error for that row, the scope still lists, `verify` reports every bad row."""

from __future__ import annotations

import pytest

from sprongus.domain.errors import IntegrityError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import CANARY
from tests.integration.stack import alice, new_key, owner, stack
from tests.pg import PgDatabase

P1 = Scope.project("p1")


def test_postgres_corrupt_rows_are_per_row_integrity_errors(pg_db: PgDatabase) -> None:
    keys, hmac = new_key("k1"), new_key("h1")
    maintenance = stack(pg_db.maintenance_url, keys, hmac_keys=hmac)
    try:
        for key in ("a", "bad", "c"):
            maintenance.secrets.set(owner(), P1, key, SecretValue(CANARY + key), {"tag": key})
        maintenance.secrets.set(owner(), Scope.user("bob"), "moved", SecretValue(CANARY))
    finally:
        maintenance.close()
    with pg_db.admin() as conn:
        conn.execute("UPDATE secret_kv SET meta = '[1, 2]'::jsonb WHERE key_name = 'bad'")
        conn.execute("UPDATE secret_kv SET owner_id = 'not an id!' WHERE key_name = 'moved'")
        conn.execute("UPDATE secret_kv SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) "
                     "WHERE key_name = 'c'")

    app = stack(pg_db.app_url, keys, hmac_keys=hmac)  # the API's role, under row-level security
    try:
        for reveal in (True, False):
            with pytest.raises(IntegrityError):
                app.secrets.get(alice(), P1, "bad", reveal=reveal)
        assert app.secrets.get(alice(), P1, "a", reveal=True).value == SecretValue(CANARY + "a")
        page = app.secrets.list(alice(), P1, with_meta=True)
        assert [(v.key, v.damaged, v.meta) for v in page.items] == [
            ("a", False, {"tag": "a"}), ("bad", True, {}), ("c", False, {"tag": "c"})]
    finally:
        app.close()

    maintenance = stack(pg_db.maintenance_url, keys, hmac_keys=hmac)
    try:
        report = maintenance.rotation.verify(owner())
    finally:
        maintenance.close()
    assert report.checked == 4
    assert sorted(report.failures) == [
        ("?", "moved", "stored row does not decode (owner_id)"),
        ("project:p1", "bad", "stored row does not decode (meta)"),
        ("project:p1", "c", "checksum mismatch")]
