"""A secret's history with `sprongus secrets ... --remote` (real processes) against gunicorn on Postgres, beside the
same commands run locally on SQLite: the same output and exit codes (docs/history.md, docs/cli.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Machine, one_error_line
from tests.e2e.gunicorn.conftest import ALL_SCOPES, Stack
from tests.e2e.gunicorn.test_cli_remote import Both
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn and a bao binary")

ADMIN = "secrets:admin"
KEY = "db.password"


@pytest.fixture
def admin_both(stack: Stack, tmp_path: Path) -> Both:
    project = stack.unique("hist")
    token = stack.token(stack.unique("hist-admin"), scopes=(*ALL_SCOPES, ADMIN), projects=(project,))
    local = Machine(tmp_path / "local")
    local.ok("secrets", "list", f"project:{project}")  # the first local command warns about the key file
    return Both(stack, local, token, f"project:{project}")


def test_history_get_version_rollback_restore_and_purge_match_local_mode(admin_both: Both) -> None:
    both, scope = admin_both, admin_both.scope
    for value in ("first-value", "second-value", CANARY):
        both.same("secrets", "set", scope, KEY, "-", input=value + "\n")

    remote = json.loads(both.remote("secrets", "history", scope, KEY, "--json").stdout)
    local = json.loads(both.here("secrets", "history", scope, KEY, "--json").stdout)
    assert [(i["version"], i["current"]) for i in remote["items"]] == [(3, True), (2, False), (1, False)]
    assert [(i["version"], i["current"]) for i in local["items"]] == [(3, True), (2, False), (1, False)]
    assert remote["deletedAt"] is None and remote["keyName"] == KEY and remote["scope"] == scope
    assert {i["createdBy"] for i in remote["items"]} == {_subject(both)}
    table = both.remote("secrets", "history", scope, KEY).stdout.splitlines()
    assert table[0].split() == ["VERSION", "CREATED", "BY", "CURRENT"] and len(table) == 4

    both.same("secrets", "get", scope, KEY, "--version", "1", "--json")
    assert both.same("secrets", "get", scope, KEY, "--version", "2", "--reveal", "--yes").stdout == "second-value\n"
    both.same("secrets", "get", scope, KEY, "--version", "9", code=3)
    both.same("secrets", "get", scope, KEY, "--version", "0", code=2)
    rolled = both.same("secrets", "rollback", scope, KEY, "--to", "1")
    assert rolled.stdout == f"rolled back {scope} {KEY} to the value of version 1 (now version 4)\n"
    both.same("secrets", "rollback", scope, KEY, "--to", "2", "--json")
    both.same("secrets", "rollback", scope, KEY, "--to", "77", code=3)

    both.same("secrets", "unset", scope, KEY)
    both.same("secrets", "get", scope, KEY, code=3)
    listed = both.same("secrets", "list", scope, "--deleted")
    assert listed.stdout.splitlines()[0].split() == ["KEY", "VERSION", "UPDATED", "DELETED"]
    deleted = json.loads(both.same("secrets", "list", scope, "--deleted", "--json").stdout)
    assert [(i["keyName"], i["version"]) for i in deleted["items"]] == [(KEY, 5)] and deleted["items"][0]["deletedAt"]
    assert both.same("secrets", "restore", scope, KEY).stdout == f"restored {scope} {KEY} (version 5)\n"
    both.same("secrets", "restore", scope, KEY, code=3)

    both.same("secrets", "unset", scope, KEY, "--purge", input="", code=2)
    purged = both.same("secrets", "unset", scope, KEY, "--purge", "--yes", "--json")
    assert json.loads(purged.stdout)["destroyedVersions"] == [5, 4, 3, 2, 1]
    both.same("secrets", "history", scope, KEY, code=3)
    both.same("secrets", "restore", scope, KEY, code=3)
    both.same("secrets", "list", scope, "--deleted", "--json")


def _subject(both: Both) -> str:
    return str(json.loads(both.remote("auth", "status", "--json").stdout)["subject"])


def test_purge_needs_admin_and_rollback_needs_write_remotely(stack: Stack) -> None:
    project = stack.unique("hist")
    scope = f"project:{project}"
    tenant, reader, other = stack.tokens_for(
        (stack.unique("hist-tenant"), ALL_SCOPES, (project,)),
        (stack.unique("hist-reader"), ("secrets:read", "secrets:reveal", ADMIN), (project,)),
        (stack.unique("hist-other"), (*ALL_SCOPES, ADMIN), (stack.unique("elsewhere"),)))
    for value in ("one", CANARY):
        assert stack.cli(tenant, "secrets", "set", scope, KEY, "-", input=value + "\n").returncode == 0

    no_admin = stack.cli(tenant, "secrets", "unset", scope, KEY, "--purge", "--yes")
    assert no_admin.returncode == 4 and "secrets:admin" in one_error_line(no_admin.stderr)
    for args in (("rollback", scope, KEY, "--to", "1"), ("restore", scope, KEY),
                 ("unset", scope, KEY, "--purge", "--yes")):
        refused = stack.cli(reader, "secrets", *args)
        assert refused.returncode == 4 and "secrets:write" in one_error_line(refused.stderr), args
    for args in (("history", scope, KEY), ("get", scope, KEY, "--version", "1"), ("rollback", scope, KEY, "--to", "1"),
                 ("unset", scope, KEY, "--purge", "--yes")):
        hidden = stack.cli(other, "secrets", *args)
        assert hidden.returncode == 3, args  # another tenant's secret is not found
    history = json.loads(stack.cli(tenant, "secrets", "history", scope, KEY, "--json").stdout)
    assert [i["version"] for i in history["items"]] == [2, 1]  # nothing refused changed anything
    local_only = stack.cli(tenant, "secrets", "purge-expired")
    assert local_only.returncode == 2 and "local only" in one_error_line(local_only.stderr)
    for proc in (no_admin, local_only):
        assert CANARY not in proc.stdout + proc.stderr
