"""Tenancy, permissions, rate limits and audit, including fail-closed audit (docs/design.md: bundles, api)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sprongus.domain.errors import AuditUnavailable, NotFound, PermissionDenied, RateLimited
from sprongus.domain.import_item import ImportItem
from sprongus.domain.principal import Permission, Principal, ScopeHidden
from sprongus.domain.records import AuditAction, AuditEvent, Outcome
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import ALL_PERMISSIONS, Harness, make_harness, owner, tenant

ALICE, P1 = Scope.user("alice"), Scope.project("p1")
HIDDEN = [Scope.user("bob"), Scope.project("p2"), Scope.system()]


def seed(h: Harness) -> None:
    for scope in [ALICE, P1, *HIDDEN]:
        h.secrets.set(owner(), scope, "k", SecretValue(f"in-{scope}"))


def test_tenant_acts_on_its_user_and_project_scopes(harness: Harness) -> None:
    alice = tenant("alice", ("p1",))
    for scope in (ALICE, P1):
        assert harness.secrets.set(alice, scope, "mine", SecretValue("v")).created
        view = harness.secrets.get(alice, scope, "mine", reveal=True)
        assert view.value is not None and view.value.reveal() == "v"
        assert [v.key for v in harness.secrets.list(alice, scope).items] == ["mine"]
        harness.secrets.unset(alice, scope, "mine")


ATTEMPTS: dict[str, Callable[[Harness, Principal, Scope], Any]] = {
    "get": lambda h, p, s: h.secrets.get(p, s, "k"),
    "reveal": lambda h, p, s: h.secrets.get(p, s, "k", reveal=True),
    "set": lambda h, p, s: h.secrets.set(p, s, "k", SecretValue("overwritten")),
    "unset": lambda h, p, s: h.secrets.unset(p, s, "k"),
    "list": lambda h, p, s: h.secrets.list(p, s),
    "rotate": lambda h, p, s: h.rotation.rotate(p, s, "k"),
    "export": lambda h, p, s: h.transfer.export(p, s, bundle=True),
    "import": lambda h, p, s: h.transfer.import_(p, [ImportItem(P1, "ok", SecretValue("x")),
                                                    ImportItem(s, "k", SecretValue("overwritten"))],
                                                allow_plaintext=True),
}


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
@pytest.mark.parametrize("scope", HIDDEN, ids=str)
def test_out_of_tenant_scopes_look_absent_and_are_audited_as_denied(harness: Harness, attempt: str,
                                                                    scope: Scope) -> None:
    seed(harness)
    before = {s: dict(rows) for s, rows in harness.uow.repository.rows.items()}
    mark = len(harness.audit.events)
    with pytest.raises(NotFound) as err:
        ATTEMPTS[attempt](harness, tenant("alice", ("p1",)), scope)
    assert isinstance(err.value, ScopeHidden)
    assert {s: dict(rows) for s, rows in harness.uow.repository.rows.items()} == before
    events = harness.audit.events[mark:]
    assert [(e.actor, e.outcome) for e in events] == [("alice", Outcome.DENIED)]
    view = harness.secrets.get(owner(), scope, "k", reveal=True)
    assert view.value is not None and view.value.reveal() == f"in-{scope}"


def test_hidden_scope_answers_the_same_whether_or_not_the_key_exists(harness: Harness) -> None:
    seed(harness)
    alice = tenant()
    messages = []
    for key in ("k", "absent"):
        with pytest.raises(NotFound) as err:
            harness.secrets.get(alice, Scope.user("bob"), key)
        messages.append((type(err.value), str(err.value)))
    assert messages[0] == messages[1]


@pytest.mark.parametrize(("granted", "action", "required"), [
    ({Permission.READ}, lambda h, p: h.secrets.set(p, ALICE, "k", SecretValue("x")), "secrets:write"),
    ({Permission.READ}, lambda h, p: h.secrets.unset(p, ALICE, "k"), "secrets:write"),
    ({Permission.READ, Permission.WRITE}, lambda h, p: h.secrets.get(p, ALICE, "k", reveal=True), "secrets:reveal"),
    ({Permission.WRITE}, lambda h, p: h.secrets.get(p, ALICE, "k"), "secrets:read"),
    ({Permission.WRITE}, lambda h, p: h.secrets.list(p, ALICE), "secrets:read"),
    ({Permission.READ}, lambda h, p: h.rotation.rotate(p, ALICE, "k"), "secrets:write"),
])
def test_missing_permission_is_denied(harness: Harness, granted: set[Permission],
                                      action: Callable[[Harness, Principal], Any], required: str) -> None:
    seed(harness)
    principal = tenant(permissions=frozenset(granted))
    with pytest.raises(PermissionDenied) as err:
        action(harness, principal)
    assert err.value.required == required
    assert harness.audit.events[-1].outcome is Outcome.DENIED
    assert harness.secrets.get(owner(), ALICE, "k").version == 1


def test_system_scope_needs_admin(harness: Harness) -> None:
    admin = tenant("ops", (), ALL_PERMISSIONS | {Permission.ADMIN})
    harness.secrets.set(admin, Scope.system(), "smtp.password", SecretValue("s3cret"))
    view = harness.secrets.get(admin, Scope.system(), "smtp.password", reveal=True)
    assert view.value is not None and view.value.reveal() == "s3cret"
    with pytest.raises(NotFound):
        harness.secrets.get(tenant("ops", (), ALL_PERMISSIONS), Scope.system(), "smtp.password")


def test_bundle_export_needs_reveal_permission() -> None:
    h = make_harness()
    h.secrets.set(owner(), P1, "a", SecretValue("x"))
    reader = tenant(permissions=frozenset({Permission.READ, Permission.WRITE}))
    assert [v.key for v in h.transfer.export(reader, P1).items] == ["a"]
    with pytest.raises(PermissionDenied):
        h.transfer.export(reader, P1, bundle=True)
    assert h.transfer.export(tenant(), P1, bundle=True).bundle is not None


def test_reveal_is_rate_limited_per_tenant_but_never_for_the_owner() -> None:
    h = make_harness(reveal_limit="3/minute")
    h.secrets.set(owner(), ALICE, "k", SecretValue("v"))
    h.secrets.set(owner(), Scope.user("bob"), "k", SecretValue("v"))
    alice = tenant("alice")
    for _ in range(3):
        h.secrets.get(alice, ALICE, "k", reveal=True)
    with pytest.raises(RateLimited) as err:
        h.secrets.get(alice, ALICE, "k", reveal=True)
    assert err.value.retry_after >= 1 and err.value.policy == "reveal" and err.value.limit == 3
    assert h.audit.events[-1].outcome is Outcome.RATE_LIMITED
    assert h.secrets.get(alice, ALICE, "k").masked  # masked reads are not reveals
    h.secrets.get(tenant("bob"), Scope.user("bob"), "k", reveal=True)  # counted per principal
    for _ in range(20):
        assert h.secrets.get(owner(), ALICE, "k", reveal=True).value is not None


def test_writes_are_rate_limited_for_tenants() -> None:
    h = make_harness(write_limit="2/minute")
    alice = tenant("alice")
    h.secrets.set(alice, ALICE, "a", SecretValue("1"))
    h.secrets.set(alice, ALICE, "b", SecretValue("2"))
    with pytest.raises(RateLimited):
        h.secrets.set(alice, ALICE, "c", SecretValue("3"))
    with pytest.raises(NotFound):
        h.secrets.get(owner(), ALICE, "c")
    for i in range(5):
        h.secrets.set(owner(), ALICE, f"o{i}", SecretValue("x"))


def _fields(e: AuditEvent) -> tuple[str, AuditAction, str | None, str | None, int | None, Outcome]:
    return e.actor, e.action, e.scope, e.key_name, e.version, e.outcome


def test_every_action_is_audited_with_who_what_where_and_outcome(harness: Harness) -> None:
    alice = Principal("alice", ALL_PERMISSIONS, frozenset({"p1"}), request_id="req-1", client_address="10.0.0.9")
    s = harness
    s.secrets.set(alice, P1, "k", SecretValue("v1"))
    s.secrets.set(alice, P1, "k", SecretValue("v2"))
    s.secrets.get(alice, P1, "k", reveal=True)
    s.rotation.rotate(alice, P1, "k")
    s.transfer.export(alice, P1)
    s.transfer.import_(alice, [ImportItem(P1, "j", SecretValue("x"))], allow_plaintext=True)
    s.secrets.unset(alice, P1, "k")
    with pytest.raises(NotFound):
        s.secrets.unset(alice, P1, "k")
    assert [_fields(e) for e in harness.audit.events] == [
        ("alice", AuditAction.CREATE, "project:p1", "k", 1, Outcome.SUCCESS),
        ("alice", AuditAction.UPDATE, "project:p1", "k", 2, Outcome.SUCCESS),
        ("alice", AuditAction.REVEAL, "project:p1", "k", 2, Outcome.SUCCESS),
        ("alice", AuditAction.ROTATE, "project:p1", "k", 3, Outcome.SUCCESS),
        ("alice", AuditAction.EXPORT, "project:p1", None, None, Outcome.SUCCESS),
        ("alice", AuditAction.IMPORT, "project:p1", "j", 1, Outcome.SUCCESS),  # one row per key imported
        ("alice", AuditAction.IMPORT, None, None, None, Outcome.SUCCESS),
        ("alice", AuditAction.DELETE, "project:p1", "k", 3, Outcome.SUCCESS),
        ("alice", AuditAction.DELETE, "project:p1", "k", None, Outcome.NOT_FOUND),
    ]
    assert all((e.request_id, e.client_address) == ("req-1", "10.0.0.9") for e in harness.audit.events)
    assert all(e.time == harness.clock.now() for e in harness.audit.events)


def test_rotate_master_and_verify_are_audited(harness: Harness) -> None:
    harness.secrets.set(owner(), ALICE, "k", SecretValue("v"))
    harness.add_master_key()
    harness.rotation.rotate_master(owner())
    harness.rotation.verify(owner())
    rotated, verified = harness.audit.events[-2:]
    assert (rotated.action, rotated.outcome, rotated.detail["rotated"]) == \
        (AuditAction.ROTATE_MASTER, Outcome.SUCCESS, 1)
    assert (verified.action, verified.detail["checked"], verified.detail["failed"]) == (AuditAction.VERIFY, 1, 0)


def test_reveal_fails_closed_when_audit_is_down(harness: Harness) -> None:
    harness.secrets.set(owner(), ALICE, "k", SecretValue("top-secret-value"))
    harness.audit.available = False
    result = None
    with pytest.raises(AuditUnavailable):
        result = harness.secrets.get(tenant(), ALICE, "k", reveal=True)
    assert result is None
    with pytest.raises(AuditUnavailable):
        harness.secrets.get(owner(), ALICE, "k", reveal=True)


@pytest.mark.parametrize("action", [
    lambda h: h.secrets.set(owner(), ALICE, "k", SecretValue("new")),
    lambda h: h.secrets.set(owner(), ALICE, "fresh", SecretValue("new")),
    lambda h: h.secrets.unset(owner(), ALICE, "k"),
    lambda h: h.rotation.rotate(owner(), ALICE, "k"),
    lambda h: h.transfer.import_(owner(), [ImportItem(ALICE, "fresh", SecretValue("x"))], mode="replace",
                                allow_plaintext=True),
])
def test_writes_roll_back_when_audit_is_down(harness: Harness, action: Callable[[Harness], Any]) -> None:
    harness.secrets.set(owner(), ALICE, "k", SecretValue("old"))
    before = dict(harness.uow.repository.rows[ALICE])
    harness.audit.available = False
    with pytest.raises(AuditUnavailable):
        action(harness)
    assert harness.uow.repository.rows[ALICE] == before
    harness.audit.available = True
    view = harness.secrets.get(owner(), ALICE, "k", reveal=True)
    assert view.version == 1 and view.value is not None and view.value.reveal() == "old"


def test_bundle_export_counts_as_a_reveal_for_rate_limits() -> None:
    h = make_harness(reveal_limit="2/minute")
    alice = tenant()
    h.secrets.set(alice, Scope.user("alice"), "k", SecretValue("v"))
    h.transfer.export(alice, Scope.user("alice"), bundle=True)
    h.secrets.get(alice, Scope.user("alice"), "k", reveal=True)
    with pytest.raises(RateLimited):
        h.transfer.export(alice, Scope.user("alice"), bundle=True)
    h.transfer.export(alice, Scope.user("alice"))  # metadata is not a reveal
