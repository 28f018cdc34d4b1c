"""One request, one reading: a repeated query parameter or a JSON object that repeats a name is refused (422),
because the app and a proxy, a log or another parser in front of it would each read a different request.

webargs keeps the first of a repeated parameter (`?bundle=false&bundle=true` was a metadata export where a proxy
saw a bundle export); Python's json keeps the last of a repeated name (`{"value": "a", "value": "b"}` stored "b"
where a first-wins reader saw "a").
"""

from __future__ import annotations

import json

import pytest

from sprongus.entrypoints.api.input_rules import ONCE_RULE, UNIQUE_NAMES_RULE
from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

ECHO = "EchoMarker7x"
LIST = "/v1/secrets?ownerType=project&ownerId=p1"
EXPORT = "/v1/secrets:export?ownerType=project&ownerId=p1"


@pytest.mark.parametrize(("method", "path", "field"), [
    ("GET", EXPORT + "&bundle=false&bundle=true", "bundle"),
    ("GET", EXPORT + "&bundle=true&allVersions=false&allVersions=true", "allVersions"),
    ("GET", EXPORT + "&prefix=db.&prefix=", "prefix"),
    ("GET", LIST + "&ownerId=p2", "ownerId"),
    ("GET", LIST + "&limit=1&limit=2", "limit"),
    ("GET", LIST + "&withMeta=true&withMeta=false", "withMeta"),
    ("GET", KEY + "?version=1&version=1", "version"),  # even the same value twice: one spelling per request
    ("DELETE", KEY + "?purge=true&purge=false", "purge"),
    ("PUT", KEY + f"?{ECHO}=1&{ECHO}=2", "query"),  # a name that is not ours is not repeated back
])
def test_a_repeated_query_parameter_is_422_and_does_nothing(any_api: ApiClient, method: str, path: str,
                                                            field: str) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    response = any_api.call(method, path, json={"value": "changed"} if method == "PUT" else None)
    body = problem(response, 422)
    assert body["errors"] == {field: [ONCE_RULE]}
    text = response.get_data(as_text=True)
    assert ECHO not in text and CANARY not in text
    revealed = any_api.reveal(KEY).get_json()  # not written, not deleted
    assert (revealed["value"], revealed["version"]) == (CANARY, 1)


@pytest.mark.parametrize("switch", ["bundle=1", "bundle=yes", "allVersions=on"])
def test_an_export_switch_is_exactly_true_or_false(api: ApiClient, switch: str) -> None:
    """marshmallow's Boolean took 1, yes and on too: more spellings of a request that decides whether values leave."""
    api.seed("project:p1", "db.password", CANARY)
    response = api.call("GET", f"{EXPORT}&{switch}")
    assert list(problem(response, 422)["errors"]) == [switch.split("=")[0]]
    assert CANARY not in response.get_data(as_text=True)


def test_the_export_switches_still_work(api: ApiClient) -> None:
    api.seed("project:p1", "db.password", CANARY)
    metadata = api.call("GET", EXPORT + "&bundle=false")
    assert metadata.status_code == 200 and metadata.get_json()["format"] == "sprongus.metadata.v1"
    bundle = api.call("GET", EXPORT + "&bundle=true&allVersions=true")
    assert bundle.status_code == 200 and bundle.get_json()["format"] == "sprongus.bundle.v1"


@pytest.mark.parametrize(("method", "path", "raw"), [
    ("PUT", KEY, '{"value": "first", "value": "second"}'),
    ("PUT", KEY, '{"value": "v", "meta": {"owner": "a", "owner": "b"}}'),
    ("POST", "/v1/secrets:import",
     '{"allowPlaintext": true, "items": [{"scope": "project:p1", "key": "db.password", "key": "other", '
     '"value": "v"}]}'),
    ("POST", KEY + ":reveal", '{"oneTime": false, "oneTime": true}'),
    ("POST", "/v1/secrets:reveal", '{"ownerType": "project", "ownerId": "p2", "ownerId": "p1"}'),
])
def test_a_json_object_repeating_a_name_is_422_and_writes_nothing(any_api: ApiClient, method: str, path: str,
                                                                   raw: str) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    response = any_api.call(method, path, data=raw.encode(), content_type="application/json")
    assert problem(response, 422)["errors"] == {"body": [UNIQUE_NAMES_RULE]}
    assert CANARY not in response.get_data(as_text=True)
    listed = any_api.call("GET", LIST).get_json()["items"]
    assert [(item["keyName"], item["version"]) for item in listed] == [("db.password", 1)]


def test_a_repeated_name_inside_a_value_is_text_not_structure(api: ApiClient) -> None:
    """A value is a string: JSON inside it is the user's business, stored as given."""
    value = json.dumps({"a": 1}).replace("}", ', "a": 2}')
    assert api.put(KEY, value).status_code in (200, 201)
    assert api.reveal(KEY).get_json()["value"] == value


@pytest.mark.parametrize("raw", [
    '{"token": "a", "token": "b"}'.encode("utf-16"),  # a repeated name, in an encoding the rules did not read
    '{"token": "\\ud800"}'.encode("utf-16-le"),  # a lone surrogate: was a 500
    b"\xef\xbb\xbf" + b'{"token": "a", "token": "b"}',  # UTF-8 with a BOM
])
def test_revoke_reads_json_as_utf_8_like_every_endpoint(api: ApiClient, raw: bytes) -> None:
    """Flask's get_json also takes UTF-16/32 and a BOM, which the input rules (reading UTF-8) passed as malformed:
    the revoke endpoint then read a body no other endpoint would."""
    response = api.call("POST", "/v1/auth/revoke", data=raw, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert api.call("GET", "/v1/auth/whoami").status_code == 200  # nothing was revoked
