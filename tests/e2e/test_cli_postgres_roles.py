"""The CLI on Postgres as the wrong login, as real processes: a new database tells a maintenance login that the first
upgrade needs a superuser, and the app role (SELECT only on api_token) is told to issue tokens as a maintenance
login, each in one line instead of the driver's "permission denied"."""

from __future__ import annotations

import sys

import pytest

from tests.e2e.conftest import Machine, one_error_line
from tests.pg import PgDatabase

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain")]


def _as(machine: Machine, url: str, *args: str) -> tuple[int, str, str]:
    proc = machine.run(*args, env={"SPRONGUS_DATABASE_URL": url, "SPRONGUS_KEY_PROVIDER": "file"})
    return proc.returncode, proc.stdout, proc.stderr


def test_a_new_database_says_the_first_upgrade_needs_a_superuser(machine: Machine, pg_empty: PgDatabase) -> None:
    with pg_empty.admin() as conn:  # a plain login: what a maintenance login is before the roles exist
        conn.execute(f'CREATE ROLE "{pg_empty.maintenance_role}" LOGIN NOBYPASSRLS')

    used_code, _, used = _as(machine, pg_empty.maintenance_url, "secrets", "list", "project:p1")
    upgrade_code, _, upgrade = _as(machine, pg_empty.maintenance_url, "db", "upgrade")
    first_code, first, _ = _as(machine, pg_empty.admin_url, "db", "upgrade")

    assert used_code == 2
    line = one_error_line(used, naming="superuser")
    assert "sprongus db upgrade" in line and "no sprongus schema yet" in line
    assert upgrade_code == 4
    line = one_error_line(upgrade, naming="superuser")
    assert "permission denied" not in line and "maintenance login" in line
    assert (first_code, first.startswith("applied: 0001_initial")) == (0, True)


def test_the_app_role_is_told_to_issue_and_revoke_tokens_as_a_maintenance_login(machine: Machine,
                                                                                pg_db: PgDatabase) -> None:
    create = ["tokens", "create", "--subject", "alice", "--scope", "secrets:read"]
    app_code, app_out, app_err = _as(machine, pg_db.app_url, *create)
    ok_code, token, made = _as(machine, pg_db.maintenance_url, *create)
    token_id = made.split()[1]
    revoke_code, _, revoke = _as(machine, pg_db.app_url, "tokens", "revoke", token_id)
    list_code, listed, _ = _as(machine, pg_db.app_url, "tokens", "list", "--json")  # reading is the app's right

    assert (app_code, app_out) == (4, "")
    line = one_error_line(app_err, naming="maintenance login")
    assert "permission denied" not in line and "api_token" in line
    assert ok_code == 0 and token.startswith("spr_")
    assert revoke_code == 4
    one_error_line(revoke, naming="maintenance login")
    assert list_code == 0 and token_id in listed and token.strip() not in listed
