"""Key-prefix principals, through the use cases, on every backend: a caller whose key prefix is `notion.` sees and
touches only keys starting with it. Every other key of its scopes answers like another tenant's secret (NotFound,
audited as a denial), whether or not it exists; listings, exports, imports and bulk rotation stop at the prefix.

The memory and SQLite vaults have no row-level security: there the service alone enforces the prefix. On
Postgres (as the app role) the service and the RLS policy both do; test_key_prefix_pg.py probes the policy alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sprongus.domain.errors import NotFound
from sprongus.domain.import_item import ImportItem
from sprongus.domain.principal import Permission, Principal, ScopeHidden, TokenKind
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import UseCaseSet, make_harness, use_cases
from tests.integration.stack import new_key, sqlite_url, stack
from tests.pg import PgDatabase, fresh_database

SHOP, OTHER = Scope.project("shop"), Scope.project("other")
TENANT = frozenset({Permission.READ, Permission.WRITE, Permission.REVEAL})
NOTION_KEYS = ["notion.admin", "notion.api_token", "notion.bot"]
# Outside the prefix: other services' keys, and two that share its letters but not its dot.
HIDDEN_KEYS = ["notion", "notion-old", "stripe.key", "stripe.webhook"]
ABSENT_HIDDEN = "stripe.absent"  # outside the prefix and stored nowhere
ABSENT_VISIBLE = "notion.absent"  # under the prefix, stored nowhere

AuditRow = tuple[str, str, str | None, str | None, str]  # actor, action, scope, key, outcome


def svc(kind: TokenKind = TokenKind.OPERATOR) -> Principal:
    """A token on project:shop limited to `notion.` keys (read, write, reveal)."""
    return Principal("svc", TENANT, frozenset({"shop"}), kind=kind, key_prefix="notion.")


def unprefixed() -> Principal:
    """The same token without a key prefix: the control that shows the hidden keys are really there."""
    return Principal("svc", TENANT, frozenset({"shop"}))


def owner() -> Principal:
    return Principal.local_owner("ops")


@dataclass
class Vault:
    name: str
    ops: UseCaseSet
    audit_rows: Callable[[], list[AuditRow]]
    owner_ops: UseCaseSet  # the vault owner's view: on Postgres a maintenance login, which sees every row

    def state(self) -> dict[tuple[str, str], int]:
        """(scope, key) -> version of every stored secret, as the vault owner sees them."""
        return {(str(scope), v.key): v.version for scope in (SHOP, OTHER)
                for v in self.owner_ops.secrets.list(owner(), scope, limit=500).items}

    def value(self, scope: Scope, key: str) -> str:
        view = self.owner_ops.secrets.get(owner(), scope, key, reveal=True)
        assert view.value is not None
        return view.value.reveal()


def _sql_audit(run: Callable[[str], list[Any]]) -> Callable[[], list[AuditRow]]:
    def rows() -> list[AuditRow]:
        return [(a, b, c, d, e) for a, b, c, d, e in run("SELECT actor, action, scope, key_name, outcome "
                                                         "FROM audit_event ORDER BY seq")]
    return rows


@pytest.fixture(scope="module")
def shared_pg() -> Iterator[tuple[PgDatabase, str]]:
    """One migrated Postgres database (and master key) for the module: each test empties secret_kv first."""
    with fresh_database(migrated=True) as db:
        yield db, new_key()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Vault]:
    """Seeded as the vault owner: NOTION_KEYS and HIDDEN_KEYS in project:shop, notion.api_token in project:other.
    Postgres runs the caller's use cases as the app role (row-level security on), the owner's as maintenance."""
    closers: list[Callable[[], None]] = []
    if request.param == "memory":
        h = make_harness()
        cases = UseCaseSet(h.secrets, h.transfer, h.rotation, h.reveal_tokens, h.history)
        made = Vault("memory", cases,
                     lambda: [(e.actor, e.action.value, e.scope, e.key_name, e.outcome.value) for e in h.audit.events],
                     cases)
    elif request.param == "sqlite":
        built = stack(sqlite_url(tmp_path), new_key())
        closers.append(built.close)
        db_path = tmp_path / "vault.db"

        def run_sqlite(sql: str) -> list[Any]:
            with closing(sqlite3.connect(db_path)) as conn:
                return conn.execute(sql).fetchall()

        cases = use_cases(built.container)
        made = Vault("sqlite", cases, _sql_audit(run_sqlite), cases)
    else:
        pg, keys = request.getfixturevalue("shared_pg")
        with pg.admin() as conn:
            conn.execute("DELETE FROM secret_kv")
        maintenance = stack(pg.maintenance_url, keys)
        closers.append(maintenance.close)
        app = stack(pg.app_url, keys)
        closers.append(app.close)

        def run_pg(sql: str) -> list[Any]:
            with pg.admin() as conn:
                return list(conn.execute(sql).fetchall())

        made = Vault("postgres", use_cases(app.container), _sql_audit(run_pg), use_cases(maintenance.container))
    try:
        for key in NOTION_KEYS + HIDDEN_KEYS:
            made.owner_ops.secrets.set(owner(), SHOP, key, SecretValue(f"value of {key}"))
        made.owner_ops.secrets.set(owner(), OTHER, "notion.api_token", SecretValue("other tenant's"))
        yield made
    finally:
        for close in closers:
            close()


# Every single-key use case, as (audited action, attempt).
ATTEMPTS: dict[str, tuple[str, Callable[[UseCaseSet, Principal, Scope, str], Any]]] = {
    "get": ("read", lambda o, p, s, k: o.secrets.get(p, s, k)),
    "reveal": ("reveal", lambda o, p, s, k: o.secrets.get(p, s, k, reveal=True)),
    "set": ("update", lambda o, p, s, k: o.secrets.set(p, s, k, SecretValue("planted"))),
    "set If-Match": ("update", lambda o, p, s, k: o.secrets.set(p, s, k, SecretValue("planted"),
                                                                 expected_version=1)),
    "check_set": ("update", lambda o, p, s, k: o.secrets.check_set(p, s, k, conditional=False)),
    "unset": ("delete", lambda o, p, s, k: o.secrets.unset(p, s, k)),
    "rotate_key": ("rotate", lambda o, p, s, k: o.rotation.rotate_key(p, s, k)),
    "rotate key=": ("rotate", lambda o, p, s, k: o.rotation.rotate(p, s, key=k)),
    "mint reveal token": ("reveal", lambda o, p, s, k: o.reveal_tokens.mint(p, s, k, 60)),
    "import": ("import", lambda o, p, s, k: o.transfer.import_(
        p, [ImportItem(SHOP, "notion.new", SecretValue("x")), ImportItem(s, k, SecretValue("planted"))],
        allow_plaintext=True)),
}


def _refusal(vault: Vault, principal: Principal, attempt: str, scope: Scope, key: str) -> tuple[type, str, AuditRow]:
    """Run a refused attempt: (error class, its public detail (the API's words), its one audit row)."""
    before, mark = vault.state(), len(vault.audit_rows())
    with pytest.raises(NotFound) as err:
        ATTEMPTS[attempt][1](vault.ops, principal, scope, key)
    assert vault.state() == before, "a refused attempt changed the vault"
    rows = vault.audit_rows()[mark:]
    assert len(rows) == 1, rows
    return type(err.value), err.value.public_detail, rows[0]


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
def test_keys_outside_the_prefix_answer_like_another_tenants_secret(vault: Vault, attempt: str) -> None:
    action = ATTEMPTS[attempt][0]
    # The control: without the prefix, the same token reaches the key (so the refusal below is the prefix's).
    assert vault.ops.secrets.get(unprefixed(), SHOP, "stripe.key").key == "stripe.key"

    hidden = _refusal(vault, svc(), attempt, SHOP, "stripe.key")
    absent = _refusal(vault, svc(), attempt, SHOP, ABSENT_HIDDEN)
    other_tenant = _refusal(vault, svc(), attempt, OTHER, "notion.api_token")

    for (kind, detail, row), scope, key in ((hidden, SHOP, "stripe.key"), (absent, SHOP, ABSENT_HIDDEN),
                                            (other_tenant, OTHER, "notion.api_token")):
        assert kind is ScopeHidden
        assert detail == other_tenant[1]
        if attempt == "import":  # an import is audited without a scope or key
            assert row == ("svc", action, None, None, "denied")
        else:
            assert row == ("svc", action, str(scope), key, "denied")
    assert vault.value(SHOP, "stripe.key") == "value of stripe.key"
    assert ("project:shop", "notion.new") not in vault.state()


def test_keys_that_only_share_the_prefixs_letters_are_hidden_too(vault: Vault) -> None:
    for key in ("notion", "notion-old"):
        kind, _, row = _refusal(vault, svc(), "reveal", SHOP, key)
        assert kind is ScopeHidden and row[-1] == "denied"


def test_keys_under_the_prefix_work(vault: Vault) -> None:
    ops, p = vault.ops, svc()
    assert ops.secrets.get(p, SHOP, "notion.api_token").version == 1
    view = ops.secrets.get(p, SHOP, "notion.api_token", reveal=True)
    assert view.value is not None and view.value.reveal() == "value of notion.api_token"
    assert ops.secrets.set(p, SHOP, "notion.api_token", SecretValue("v2")).view.version == 2
    assert ops.secrets.set(p, SHOP, "notion.api_token", SecretValue("v3"), expected_version=2).view.version == 3
    assert ops.secrets.set(p, SHOP, "notion.new", SecretValue("fresh")).created
    assert ops.rotation.rotate_key(p, SHOP, "notion.api_token").version == 4
    minted = ops.reveal_tokens.mint(p, SHOP, "notion.api_token", 60)
    redeemed = ops.reveal_tokens.redeem(minted.token, "192.0.2.1")
    assert redeemed.value is not None and redeemed.value.reveal() == "v3"
    ops.secrets.unset(p, SHOP, "notion.new")
    with pytest.raises(NotFound) as err:  # an absent key under the prefix: a plain NotFound, not a denial
        ops.secrets.get(p, SHOP, ABSENT_VISIBLE)
    assert not isinstance(err.value, ScopeHidden)
    assert vault.audit_rows()[-1] == ("svc", "read", "project:shop", ABSENT_VISIBLE, "not_found")
    assert vault.value(SHOP, "notion.api_token") == "v3"
    assert {k: v for (s, k), v in vault.state().items() if s == "project:shop" and k in HIDDEN_KEYS} == \
        dict.fromkeys(HIDDEN_KEYS, 1)


def test_a_workload_token_with_a_prefix_is_held_to_it_the_same_way(tmp_path: Path) -> None:
    """Workload tokens count reveals against their own limit; the prefix applies to them all the same (a SQLite
    vault: its container has every rate-limit policy)."""
    built = stack(sqlite_url(tmp_path), new_key())
    try:
        ops = use_cases(built.container)
        for key in ("notion.api_token", "stripe.key"):
            ops.secrets.set(owner(), SHOP, key, SecretValue(key))
        view = ops.secrets.get(svc(TokenKind.WORKLOAD), SHOP, "notion.api_token", reveal=True)
        assert view.value is not None and view.value.reveal() == "notion.api_token"
        with pytest.raises(ScopeHidden):
            ops.secrets.get(svc(TokenKind.WORKLOAD), SHOP, "stripe.key", reveal=True)
    finally:
        built.close()


def _listed(vault: Vault, principal: Principal, prefix: str, limit: int = 500) -> list[str]:
    """Every key a listing returns, following its cursor."""
    keys: list[str] = []
    cursor = None
    while True:
        page = vault.ops.secrets.list(principal, SHOP, prefix, cursor=cursor, limit=limit)
        keys += [v.key for v in page.items]
        if page.next_cursor is None:
            return keys
        cursor = page.next_cursor


@pytest.mark.parametrize(("prefix", "expected"), [
    ("", NOTION_KEYS),
    ("n", NOTION_KEYS),
    ("notion", NOTION_KEYS),  # not notion, notion-old
    ("notion.", NOTION_KEYS),
    ("notion.a", ["notion.admin", "notion.api_token"]),
    ("notion.api", ["notion.api_token"]),
    ("notion.zzz", []),
    ("stripe", []),
    ("stripe.key", []),
    ("notion-", []),
])
def test_listing_shows_only_keys_under_the_prefix(vault: Vault, prefix: str, expected: list[str]) -> None:
    assert _listed(vault, svc(), prefix) == expected
    assert _listed(vault, svc(), prefix, limit=1) == expected  # page by page, the cursor stays inside it too
    everything = sorted(NOTION_KEYS + HIDDEN_KEYS)
    assert _listed(vault, unprefixed(), prefix) == [k for k in everything if k.startswith(prefix)]


def test_a_cursor_pointing_outside_the_prefix_does_not_leave_it(vault: Vault) -> None:
    from sprongus.service.secrets import encode_cursor

    def after(cursor_key: str) -> list[str]:
        return [v.key for v in vault.ops.secrets.list(svc(), SHOP, cursor=encode_cursor(cursor_key)).items]

    # A forged cursor only moves the start; the rows still come from under the prefix. (Byte order:
    # "notion" < "notion-old" < "notion." < "notion.*" < "notionz" < "stripe".)
    assert after("a") == after("notion") == after("notion-old") == NOTION_KEYS
    assert after("notion.api_token") == ["notion.bot"]
    assert after("notionz") == after("stripe") == after("stripe.key") == []


@pytest.mark.parametrize("bundle", [False, True], ids=["masked", "bundle"])
@pytest.mark.parametrize(("prefix", "expected"), [("", NOTION_KEYS), ("notion.a", NOTION_KEYS[:2]),
                                                  ("stripe", [])])
def test_export_holds_only_keys_under_the_prefix(vault: Vault, bundle: bool, prefix: str,
                                                 expected: list[str]) -> None:
    result = vault.ops.transfer.export(svc(), SHOP, prefix, bundle=bundle)
    assert [v.key for v in result.items] == expected
    if bundle:
        assert result.bundle is not None
        assert [(i["scope"], i["key"]) for i in result.bundle["items"]] == [("project:shop", k) for k in expected]
        assert result.bundle["count"] == len(expected)
    assert vault.audit_rows()[-1] == ("svc", "export", "project:shop", None, "success")


def test_a_bundle_export_imports_back_under_the_prefix(vault: Vault) -> None:
    doc = vault.ops.transfer.export(svc(), SHOP, bundle=True, passphrase=SecretValue("correct horse")).bundle
    report = vault.ops.transfer.import_(svc(), bundle=doc, passphrase=SecretValue("correct horse"))
    assert report.updated == [("project:shop", k) for k in NOTION_KEYS]


def test_importing_a_bundle_with_a_key_outside_the_prefix_is_refused_and_writes_nothing(vault: Vault) -> None:
    doc = vault.owner_ops.transfer.export(owner(), SHOP, bundle=True,
                                          passphrase=SecretValue("correct horse")).bundle
    assert doc is not None and len(doc["items"]) == len(NOTION_KEYS + HIDDEN_KEYS)
    before, mark = vault.state(), len(vault.audit_rows())
    with pytest.raises(ScopeHidden):
        vault.ops.transfer.import_(svc(), bundle=doc, passphrase=SecretValue("correct horse"))
    assert vault.state() == before
    assert vault.audit_rows()[mark:] == [("svc", "import", None, None, "denied")]


@pytest.mark.parametrize("mode", ["merge", "replace"])
@pytest.mark.parametrize("outside", ["stripe.key", ABSENT_HIDDEN, "notion-old"])
def test_importing_an_item_outside_the_prefix_is_refused_and_writes_nothing(vault: Vault, mode: str,
                                                                           outside: str) -> None:
    items = [ImportItem(SHOP, "notion.api_token", SecretValue("new")), ImportItem(SHOP, "notion.new",
                                                                                  SecretValue("new")),
             ImportItem(SHOP, outside, SecretValue("planted"))]
    for dry_run in (True, False):
        before, mark = vault.state(), len(vault.audit_rows())
        with pytest.raises(NotFound) as err:
            vault.ops.transfer.import_(svc(), items, mode=mode, allow_plaintext=True, dry_run=dry_run)
        assert isinstance(err.value, ScopeHidden)
        assert vault.state() == before
        assert vault.audit_rows()[mark:] == [("svc", "import", None, None, "denied")]
    assert vault.value(SHOP, "notion.api_token") == "value of notion.api_token"


@pytest.mark.parametrize("dry_run", [True, False])
def test_import_replace_removes_only_stale_keys_under_the_prefix(vault: Vault, dry_run: bool) -> None:
    before = vault.state()
    report = vault.ops.transfer.import_(svc(), [ImportItem(SHOP, "notion.api_token", SecretValue("kept"))],
                                        mode="replace", allow_plaintext=True, dry_run=dry_run)
    assert report.updated == [("project:shop", "notion.api_token")]
    assert report.removed == [("project:shop", "notion.admin"), ("project:shop", "notion.bot")]
    after = vault.state()
    if dry_run:
        assert after == before
        return
    assert sorted(k for s, k in after if s == "project:shop") == sorted(["notion.api_token", *HIDDEN_KEYS])
    for key in HIDDEN_KEYS:  # never deleted, never touched
        assert after[("project:shop", key)] == 1
        assert vault.value(SHOP, key) == f"value of {key}"
    assert after[("project:other", "notion.api_token")] == 1
    assert vault.value(SHOP, "notion.api_token") == "kept"


def test_import_replace_under_a_narrower_import_prefix(vault: Vault) -> None:
    report = vault.ops.transfer.import_(svc(), [ImportItem(SHOP, "notion.admin", SecretValue("kept"))],
                                        mode="replace", allow_plaintext=True, prefix="notion.a")
    assert report.removed == [("project:shop", "notion.api_token")]
    assert sorted(k for s, k in vault.state() if s == "project:shop") == \
        sorted(["notion.admin", "notion.bot", *HIDDEN_KEYS])


def test_import_replace_under_a_wider_import_prefix_keeps_the_hidden_keys(vault: Vault) -> None:
    """prefix "n" covers notion and notion-old for an unprefixed caller; this one replaces under notion. only."""
    report = vault.ops.transfer.import_(svc(), [ImportItem(SHOP, "notion.bot", SecretValue("kept"))],
                                        mode="replace", allow_plaintext=True, prefix="n")
    assert report.removed == [("project:shop", "notion.admin"), ("project:shop", "notion.api_token")]
    assert sorted(k for s, k in vault.state() if s == "project:shop") == sorted(["notion.bot", *HIDDEN_KEYS])


@pytest.mark.parametrize(("prefix", "rotated"), [("", NOTION_KEYS), ("notion", NOTION_KEYS),
                                                 ("notion.a", NOTION_KEYS[:2]), ("stripe", [])])
def test_bulk_rotation_rotates_only_keys_under_the_prefix(vault: Vault, prefix: str, rotated: list[str]) -> None:
    before = vault.state()
    report = vault.ops.rotation.rotate(svc(), SHOP, prefix=prefix)
    assert (report.rotated, report.skipped) == (len(rotated), 0)
    after = vault.state()
    assert after == {(s, k): v + 1 if s == "project:shop" and k in rotated else v for (s, k), v in before.items()}
    for key in NOTION_KEYS + HIDDEN_KEYS:
        assert vault.value(SHOP, key) == f"value of {key}"
