"""The vault's key check on Postgres, as the API's app role (row-level security hides every tenant's rows from a
caller that names none) and as the maintenance role that rotates master keys."""

from __future__ import annotations

import base64
import os

import psycopg
import pytest

from sprongus.domain.errors import VaultKeyMismatch
from sprongus.domain.principal import Permission, Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container, build_container
from tests.harness import CANARY, use_cases
from tests.pg import PgDatabase

ALICE = Principal("alice", frozenset(Permission), frozenset({"p1"}))
OWNER = Principal.local_owner("operator")


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def open_vault(url: str, master_keys: str) -> Container:
    return build_container(Settings.from_mapping({
        "SPRONGUS_ENV": "dev", "SPRONGUS_DATABASE_URL": url, "SPRONGUS_KEY_PROVIDER": "env",
        "SPRONGUS_MASTER_KEYS": master_keys, "SPRONGUS_RATE_LIMIT_STORAGE": "memory://"}))


def close(vault: Container) -> None:
    vault.database().db.close()


def vault_keys(pg: PgDatabase) -> list[tuple[str, str, str]]:
    with pg.admin() as conn:
        return conn.execute("SELECT kind, key_id, master_key_id FROM vault_key ORDER BY created_at").fetchall()


def test_the_app_role_records_its_keys_and_a_wrong_key_is_refused_at_start(pg_db: PgDatabase) -> None:
    right = f"k1:{b64key()}"
    app = open_vault(pg_db.app_url, right)
    use_cases(app).secrets.set(ALICE, Scope.project("p1"), "db.password", SecretValue(CANARY))
    close(app)
    assert [(kind, master) for kind, _, master in vault_keys(pg_db)] == [("master", "env:k1"), ("hmac", "env:k1")]

    with pytest.raises(VaultKeyMismatch, match="does not match this vault"):
        open_vault(pg_db.app_url, f"k1:{b64key()}")  # the same id, another key
    with pytest.raises(VaultKeyMismatch):
        open_vault(pg_db.app_url, f"k9:{b64key()}")


def test_a_vault_without_key_records_is_checked_through_the_app_roles_sample_function(pg_db: PgDatabase) -> None:
    right = f"k1:{b64key()}"
    app = open_vault(pg_db.app_url, right)
    use_cases(app).secrets.set(ALICE, Scope.project("p1"), "db.password", SecretValue(CANARY))
    close(app)
    with pg_db.admin() as conn:
        conn.execute("DELETE FROM vault_key WHERE kind = 'master'")
    with psycopg.connect(pg_db.app_url) as conn:  # the app role alone sees no secret_kv row...
        assert conn.execute("SELECT count(*) FROM secret_kv").fetchone() == (0,)
        sample = conn.execute("SELECT key_name, master_key_id FROM sprongus_vault_data_keys(NULL, 5)").fetchall()
        assert sample == [("db.password", "env:k1")]  # ...but may test its key against a few data keys

    with pytest.raises(VaultKeyMismatch):
        open_vault(pg_db.app_url, f"k1:{b64key()}")
    assert [kind for kind, _, _ in vault_keys(pg_db)] == ["hmac"]  # the refused key was not recorded
    again = open_vault(pg_db.app_url, right)
    value = use_cases(again).secrets.get(ALICE, Scope.project("p1"), "db.password", reveal=True).value
    assert value is not None and value.reveal() == CANARY
    use_cases(again).secrets.set(ALICE, Scope.project("p1"), "next", SecretValue("v"))
    assert [kind for kind, _, _ in vault_keys(pg_db)] == ["hmac", "master"]  # recorded by the first write
    close(again)


def test_the_maintenance_role_rotates_onto_a_new_key_and_moves_the_hmac_keys(pg_db: PgDatabase) -> None:
    old, new = f"k1:{b64key()}", f"k2:{b64key()}"
    app = open_vault(pg_db.app_url, old)
    use_cases(app).secrets.set(ALICE, Scope.project("p1"), "db.password", SecretValue(CANARY))
    close(app)
    maintenance = open_vault(pg_db.maintenance_url, f"{new},{old}")
    assert use_cases(maintenance).rotation.rotate_master(OWNER).rotated == 1
    close(maintenance)
    assert {(kind, master) for kind, _, master in vault_keys(pg_db)} == {
        ("master", "env:k1"), ("master", "env:k2"), ("hmac", "env:k2")}

    app = open_vault(pg_db.app_url, new)  # the old key is gone: every value still opens and verifies
    value = use_cases(app).secrets.get(ALICE, Scope.project("p1"), "db.password", reveal=True).value
    assert value is not None and value.reveal() == CANARY
    close(app)
