"""Tenancy through the whole stack (HTTP, then raw SQL as the app role) and where plaintext must never show up."""

from __future__ import annotations

import json
import sys
import uuid

import psycopg
import pytest

from tests.e2e.gunicorn.conftest import Api, Stack
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn and a bao binary")


@pytest.fixture(scope="module")
def tenants(stack: Stack) -> dict[str, tuple[Api, str, str]]:
    """alice and bob, each with a user secret and a secret in their own project: name -> (client, subject, project)."""
    names = {name: (stack.unique(name), stack.unique("proj")) for name in ("alice", "bob")}
    tokens = stack.tokens_for(*((subject, ("secrets:read", "secrets:write", "secrets:reveal"), (project,))
                                for subject, project in names.values()))
    result = {}
    for (name, (subject, project)), token in zip(names.items(), tokens, strict=True):
        api = stack.api(token)
        for path in (f"/v1/secrets/user/{subject}/k", f"/v1/secrets/project/{project}/k"):
            assert api.put(path, json={"value": f"{CANARY}-{name}"}).status_code == 201
        result[name] = (api, subject, project)
    return result


def test_another_tenants_secrets_answer_404_as_if_absent(tenants: dict[str, tuple[Api, str, str]]) -> None:
    alice, alice_subject, alice_project = tenants["alice"]
    bob, _, _ = tenants["bob"]
    foreign = [f"/v1/secrets/user/{alice_subject}/k", f"/v1/secrets/project/{alice_project}/k"]

    for path in foreign:
        answers = [bob.get(path), bob.post(path + ":reveal", json={}), bob.post(path + ":reveal",
                   json={"oneTime": True}), bob.put(path, json={"value": "overwritten"}), bob.delete(path),
                   bob.post(path + ":rotate")]
        assert [a.status_code for a in answers] == [404] * len(answers), path
        absent = bob.get(path.replace("/k", "/absent"))
        assert (absent.status_code, absent.json()["type"], absent.json()["title"]) == (
            404, answers[0].json()["type"], answers[0].json()["title"])  # no existence oracle
        assert absent.json()["detail"].replace("absent", "k") == answers[0].json()["detail"]
    for owner_type, owner_id in (("user", alice_subject), ("project", alice_project)):
        query = f"?ownerType={owner_type}&ownerId={owner_id}"
        assert bob.get("/v1/secrets" + query).status_code == 404
        assert bob.get("/v1/secrets:export" + query).status_code == 404
    assert bob.get("/v1/secrets/system/-/k").status_code == 404  # system needs secrets:admin
    for path in foreign:  # untouched by every attempt above
        record = alice.get(path).json()
        assert (record["version"], record["masked"]) == (1, True)
    assert alice.post(foreign[1] + ":reveal", json={}).json()["value"] == f"{CANARY}-alice"


def test_missing_or_bad_tokens_are_401_with_a_bearer_challenge(stack: Stack) -> None:
    api = stack.api()
    for headers in ({}, {"Authorization": "Bearer spr_unknown"}, {"Authorization": "Basic dXNlcjpwdw=="}):
        answer = api.get("/v1/secrets?ownerType=user&ownerId=x", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.headers["Content-Type"] == "application/problem+json"


def test_row_level_security_holds_for_raw_sql_as_the_app_role(stack: Stack,
                                                               tenants: dict[str, tuple[Api, str, str]]) -> None:
    _, alice, alice_project = tenants["alice"]
    _, bob, _ = tenants["bob"]
    with psycopg.connect(stack.pg.admin_url) as admin:
        total = admin.execute("SELECT count(*) FROM secret_kv").fetchone()
        stored = admin.execute("SELECT * FROM secret_kv").fetchall() + admin.execute(
            "SELECT * FROM audit_event").fetchall()
    assert total is not None and total[0] >= 4
    assert CANARY.encode() not in repr(stored).encode() and CANARY not in repr(stored)  # ciphertext only

    with psycopg.connect(stack.pg.app_url) as app:
        flags = app.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                            "WHERE relname = 'secret_kv'").fetchone()
        role = app.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        anonymous = app.execute("SELECT count(*) FROM secret_kv").fetchone()
        app.execute("SELECT set_config('sprongus.subject', %s, true), set_config('sprongus.projects', %s, true)",
                    (alice, alice_project))
        as_alice = app.execute("SELECT owner_type, owner_id FROM secret_kv ORDER BY owner_type").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # WITH CHECK: no moving rows to bob
            app.execute("UPDATE secret_kv SET owner_id = %s WHERE owner_id = %s", (bob, alice))
        app.rollback()
        for statement in ("ALTER TABLE secret_kv DISABLE ROW LEVEL SECURITY",
                          "INSERT INTO api_token VALUES ('x', 'h', 's', 'secrets:admin', '', now(), now(), now())",
                          "UPDATE audit_event SET actor = 'nobody'"):
            with pytest.raises(psycopg.Error):
                app.execute(statement)
            app.rollback()

    assert flags == (True, True)
    assert role == (False, False)
    assert anonymous == (0,)  # no caller set: no rows at all
    assert as_alice == [("project", alice_project), ("user", alice)]


def test_plaintext_and_tokens_stay_out_of_responses_and_logs(stack: Stack) -> None:
    project = stack.unique("proj")
    token = stack.token(stack.unique("leaks"), projects=(project,))
    api = stack.api(token)
    path = f"/v1/secrets/project/{project}/k"
    request_id = f"e2e-leak-{uuid.uuid4().hex}"

    # Every non-reveal answer below is checked for the canary by Api.request as it arrives.
    assert api.put(path, json={"value": CANARY, "meta": {"provider": "notion"}},
                   headers={"Idempotency-Key": "leak-1"}).status_code == 201
    assert api.put(path, json={"value": CANARY, "meta": {"provider": "notion"}},
                   headers={"Idempotency-Key": "leak-1"}).headers["Idempotent-Replayed"] == "true"
    assert api.get(path).json()["value"] == "********"
    assert api.get(f"/v1/secrets?ownerType=project&ownerId={project}&withMeta=true").status_code == 200
    assert api.get(f"/v1/secrets:export?ownerType=project&ownerId={project}").status_code == 200
    assert api.get(f"/v1/secrets:export?ownerType=project&ownerId={project}&bundle=true").status_code == 200
    assert api.put(path, json={"value": CANARY, "meta": {"Bad Key": CANARY}}).status_code == 422
    assert api.put(path, json={"value": CANARY * 2000}).status_code == 422
    assert api.put(path, data=f'{{"value": "{CANARY}"', headers={"Content-Type": "application/json"}).status_code \
        == 400
    assert api.put(path, json={"value": CANARY}, headers={"If-Match": '"99"'}).status_code == 412
    items = [{"scope": f"project:{project}", "key": "ok", "value": CANARY},
             {"scope": f"project:{project}", "key": "9bad", "value": CANARY}]
    assert api.post("/v1/secrets:import", json={"items": items}).status_code == 422  # plaintext not allowed
    assert api.post("/v1/secrets:import", json={"items": items, "allowPlaintext": True}).status_code == 422
    assert api.get(f"/v1/secrets/project/{project}/ok").status_code == 404  # all or nothing
    assert api.post(path + ":reveal", json={}, headers={"X-Request-ID": request_id}).json()["value"] == CANARY
    minted = api.post(path + ":reveal", json={"oneTime": True, "ttlSeconds": 60})
    assert minted.status_code == 201
    one_time = minted.json()["token"]
    stack.tokens.append(one_time)  # the package's final log check looks for it too
    anonymous = stack.api()
    assert anonymous.post("/v1/secrets:redeem", json={"token": one_time}).json()["value"] == CANARY
    assert anonymous.post("/v1/secrets:redeem", json={"token": one_time}).status_code == 410

    log = stack.log_text()
    assert request_id in log  # the reveal was logged, by request id...
    assert CANARY not in log  # ...and no value ever was
    for secret in (token, one_time, token.removeprefix("spr_")):
        assert secret not in log
    assert "Bearer" not in log and "Authorization" not in log
    with psycopg.connect(stack.pg.admin_url) as admin:
        audited = admin.execute("SELECT action, outcome, key_name FROM audit_event WHERE request_id = %s",
                                (request_id,)).fetchall()
        audit_text = json.dumps(admin.execute("SELECT * FROM audit_event").fetchall(), default=str)
    assert audited == [("reveal", "success", "k")]
    assert CANARY not in audit_text and token not in audit_text and one_time not in audit_text
