"""Every permission is checked before anything is done or shown: idempotent replays, If-Match, replace dry runs and
rotations (docs/design.md#service-rules).

Release 1: a read-only token replayed another token's stored PUT answer; a replay after a delete still said 201;
a write-only token read key names from a replace dry run and versions from a 412; a `:rotate` without
secrets:read answered 403 after the rotation had been committed.
"""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import TestResponse

from tests.e2e.api.conftest import KEY, READ, REVEAL, WRITE, ApiClient, problem
from tests.harness import CANARY

IMPORT = "/v1/secrets:import"


def _put(api: ApiClient, token: str | None = None, key: str = "idem-1", **headers: str) -> TestResponse:
    return api.put(KEY, CANARY, token, headers={"Idempotency-Key": key, **headers})


def _version(api: ApiClient) -> int:
    return int(api.call("GET", KEY).get_json()["version"])


def _denied(response: TestResponse, permission: str) -> None:
    problem(response, 403)
    assert f'scope="{permission}"' in response.headers["WWW-Authenticate"]
    assert "Idempotent-Replayed" not in response.headers and CANARY not in response.get_data(as_text=True)


# Idempotency-Key replays


def test_a_replay_needs_the_permissions_of_the_first_request(api: ApiClient) -> None:
    first = _put(api)
    assert first.status_code == 201
    _denied(_put(api, api.token("alice", (READ, REVEAL))), WRITE)  # same subject, a read-only token
    in_p2_only = api.token("alice", projects=("p2",))  # same subject, but not a member of p1
    problem(_put(api, in_p2_only), 404)
    again = _put(api)  # the token that may write still gets the replay
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data() and _version(api) == 1
    outcomes = [(e.action, e.outcome) for e in api.events() if e.outcome != "success"]
    assert outcomes == [("update", "denied"), ("update", "denied")]  # both refusals audited


def test_a_replay_of_an_import_needs_write_on_its_scopes(api: ApiClient) -> None:
    body = {"allowPlaintext": True, "items": [{"scope": "project:p1", "key": "db.password", "value": CANARY}]}
    assert api.call("POST", IMPORT, json=body, headers={"Idempotency-Key": "imp"}).status_code == 200
    reader = api.token("alice", (READ,))
    _denied(api.call("POST", IMPORT, reader, json=body, headers={"Idempotency-Key": "imp"}), WRITE)


def test_a_reader_cannot_learn_that_a_key_is_in_use(api: ApiClient) -> None:
    """Even the 422 for "another request with this key" comes only after the checks."""
    assert _put(api).status_code == 201
    reader = api.token("alice", (READ,))
    _denied(api.put(KEY, "another value", reader, headers={"Idempotency-Key": "idem-1"}), WRITE)


def test_a_replay_after_the_secret_was_deleted_is_409_not_201(api: ApiClient) -> None:
    assert _put(api).status_code == 201
    assert api.call("DELETE", KEY).status_code == 204
    stale = _put(api)
    body = problem(stale, 409)
    assert body["type"].endswith(":conflict") and "deleted" in body["detail"]
    assert "Idempotent-Replayed" not in stale.headers
    problem(api.call("GET", KEY), 404)  # the replay did not write it back either
    assert _put(api, key="idem-2").status_code == 201  # a new key is a new request


def test_a_replay_after_an_update_by_someone_else_still_replays(api: ApiClient) -> None:
    first = _put(api)
    assert api.put(KEY, "newer").status_code == 200
    again = _put(api)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_data() == first.get_data()


# If-Match and replace dry runs: for readers only


def test_if_match_without_read_is_403_and_never_names_the_version(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", "v1")
    api.seed("project:p1", "db.password", "v2")
    writer = api.token("alice", (WRITE,))
    for header in ('"7"', '"2"', 'W/"2"', "garbage"):
        response = api.put(KEY, CANARY, writer, headers={"If-Match": header})
        _denied(response, READ)
        assert "version" not in response.get_data(as_text=True)
    assert _version(api) == 2  # nothing written
    plain = api.put(KEY, CANARY, writer)  # without If-Match a writer writes, as before
    assert plain.status_code == 200 and plain.headers["ETag"] == '"3"'
    stale = api.put(KEY, CANARY, headers={"If-Match": '"2"'})  # read and write: the 412 names the version
    assert problem(stale, 412)["detail"] == "If-Match: the current version is 3"


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "real run"])
def test_a_replace_needs_read(api: ApiClient, dry_run: bool) -> None:
    """The report names the removed keys, a real run's as a dry run's: a write-only token learned every key name
    of the scope (and could then restore each, its answer showing the meta)."""
    for key in ("hidden.a", "hidden.b"):
        api.seed("project:p1", key, CANARY)
    body: dict[str, Any] = {"mode": "replace", "dryRun": dry_run, "allowPlaintext": True,
                            "items": [{"scope": "project:p1", "key": "mine", "value": "x"}]}
    writer = api.token("alice", (WRITE,))
    refused = api.call("POST", IMPORT, writer, json=body)
    _denied(refused, READ)
    assert "hidden" not in refused.get_data(as_text=True)
    assert api.call("GET", "/v1/secrets/project/p1/hidden.a").status_code == 200  # nothing was removed
    merge = api.call("POST", IMPORT, writer, json={**body, "mode": "merge"})  # a merge removes nothing
    assert merge.status_code == 200 and merge.get_json()["removed"] == 0
    report = api.call("POST", IMPORT, json=body).get_json()  # read and write: the report names them
    assert [c["keyName"] for c in report["changes"]["removed"]] == ["hidden.a", "hidden.b"]


# :rotate


def test_rotate_by_a_writer_without_read_answers_with_the_rotated_record(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY, {"provider": "postgres"})
    rotated = api.call("POST", KEY + ":rotate", api.token("alice", (WRITE,)))
    assert rotated.status_code == 200 and rotated.headers["ETag"] == '"2"'
    record = rotated.get_json()
    assert (record["version"], record["value"], record["meta"]) == (2, "********", {"provider": "postgres"})
    assert record["lastRotatedAt"] is not None and CANARY not in rotated.get_data(as_text=True)
    assert _version(api) == 2
    assert api.reveal(KEY).get_json()["value"] == CANARY


def test_rotate_without_write_is_403_and_rotates_nothing(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    _denied(api.call("POST", KEY + ":rotate", api.token("alice", (READ, REVEAL))), WRITE)
    assert _version(api) == 1
    assert [e.outcome for e in api.events() if e.action == "rotate"] == ["denied"]
