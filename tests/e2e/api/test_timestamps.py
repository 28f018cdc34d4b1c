"""Every timestamp an API answer carries is RFC 3339 in UTC with a `Z` (docs/design.md#names-and-limits)."""

from __future__ import annotations

from tests.e2e.api.conftest import ApiClient
from tests.e2e.test_output_formats import assert_rfc3339, times_in


def test_every_timestamp_the_api_returns_is_rfc3339_utc(any_api: ApiClient) -> None:
    api, key = any_api, "/v1/secrets/project/p1/db.password"
    bodies = [api.call("PUT", key, json={"value": "v1", "meta": {"k": "v"}}).get_json()]
    bodies.append(api.call("POST", key + ":rotate").get_json())
    bodies.append(api.call("GET", key).get_json())
    bodies.append(api.call("GET", "/v1/secrets?ownerType=project&ownerId=p1&withMeta=true").get_json())
    bodies.append(api.call("GET", "/v1/secrets:export?ownerType=project&ownerId=p1").get_json())
    bodies.append(api.call("GET", "/v1/secrets:export?ownerType=project&ownerId=p1&bundle=true").get_json())
    bodies.append(api.call("POST", key + ":reveal", json={"oneTime": True, "ttlSeconds": 60}).get_json())
    bodies.append(api.call("POST", key + ":reveal").get_json())
    # put (2), rotate (3), get (3), list (3), export (3), bundle (1), one-time token (1), reveal (3)
    assert_rfc3339([t for body in bodies for t in times_in(body)], at_least=19)
