"""Bad input is a 4xx naming the field and the rule, never a 5xx; client text is escaped in log lines.

Release 1 answered 500 to JSON nested 100,000 deep, to a lone surrogate (`\\ud800`) in a meta value and to an
integer of more than 4,300 digits, and wrote the request path raw into the "unexpected error" log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sprongus.domain.records import AuditAction, Outcome
from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY

IMPORT = "/v1/secrets:import"
DEPTH_RULE = "JSON must nest at most 32 levels deep"
INTEGER_RULE = "integers must fit in 64 bits"
TEXT_RULE = "text must be valid UTF-8 (no lone surrogates)"
JSON_ENDPOINTS = [("PUT", KEY), ("POST", KEY + ":reveal"), ("POST", "/v1/secrets:redeem"), ("POST", IMPORT)]
SURROGATE = "\\ud800"  # as it appears in the JSON text: decodes to a lone surrogate


def _send(api: ApiClient, method: str, path: str, raw: str | bytes, token: str | None = None,
          **headers: str) -> Any:
    data = raw.encode() if isinstance(raw, str) else raw
    return api.call(method, path, token, data=data, content_type="application/json", headers=headers)


def _nested(depth: int, inner: str = "1") -> str:
    """`depth` levels of containers: arrays and objects alternating, the innermost holding `inner`."""
    text = inner
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"a":{text}}}'
    return text


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_json_nested_100k_deep_is_422_on_every_endpoint_that_takes_json(any_api: ApiClient, method: str,
                                                                      path: str) -> None:
    any_api.seed("project:p1", "db.password", CANARY)
    for body in ("[" * 100_000 + "]" * 100_000, '{"value":' + _nested(100_000) + "}"):
        if path.endswith(":redeem"):  # a redeem's body is at most 4 KiB: refused before it is read
            problem(_send(any_api, method, path, body), 413)
            body = "[" * 40 + "]" * 40
        answer = problem(_send(any_api, method, path, body), 422)
        assert answer["errors"] == {"body": [DEPTH_RULE]}


def test_the_depth_limit_is_32_levels(api: ApiClient) -> None:
    """32 levels pass the JSON rule (the schema then refuses the shape); 33 do not."""
    for depth, rule_broken in ((31, False), (32, True)):  # plus the body's own object: 32 and 33 levels
        answer = problem(_send(api, "POST", IMPORT, '{"items":' + _nested(depth) + "}"), 422)
        assert (answer["errors"] == {"body": [DEPTH_RULE]}) is rule_broken, answer


@pytest.mark.parametrize(("method", "path", "raw", "field"), [
    ("PUT", KEY, '{"value": "x", "meta": {"note": "@"}}', "meta"),
    ("PUT", KEY, '{"value": "x", "meta": {"n@": "x"}}', "meta"),
    ("PUT", KEY, '{"value": "a@b"}', "value"),
    ("PUT", KEY, '{"value": "x", "@": 1}', "body"),
    ("POST", IMPORT, '{"allowPlaintext": true, "items": [{"scope": "project:p1", "key": "k", "value": "x"}, '
                     '{"scope": "project:p1", "key": "k@", "value": "x"}]}', "items[1]"),
    ("POST", IMPORT, '{"passphrase": "@", "bundle": {}}', "passphrase"),
    ("POST", "/v1/secrets:redeem", '{"token": "sprr_@"}', "token"),
])
def test_a_lone_surrogate_anywhere_in_json_is_422_naming_the_field(any_api: ApiClient, method: str, path: str,
                                                                   raw: str, field: str) -> None:
    answer = problem(_send(any_api, method, path, raw.replace("@", SURROGATE)), 422)
    assert answer["errors"] == {field: [TEXT_RULE]}
    assert any_api.call("GET", KEY).status_code == 404  # nothing written


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "9" * 5000, str(2**63), str(-(2**63) - 1), "1" + "0" * 19])
def test_an_integer_beyond_64_bits_is_422(any_api: ApiClient, number: str) -> None:
    bodies = [(KEY, '{"value": "x", "meta": {"n": #}}', "meta"),
              (KEY + ":reveal", '{"oneTime": true, "ttlSeconds": #}', "ttlSeconds"),
              (IMPORT, '{"items": [{"scope": "project:p1", "key": "k", "value": "x", "meta": {"n": #}}]}', "items[0]")]
    for path, raw, field in bodies:
        answer = problem(_send(any_api, "POST" if path != KEY else "PUT", path, raw.replace("#", number)), 422)
        assert answer["errors"] == {field: [INTEGER_RULE]}, (path, answer)
    assert any_api.call("GET", KEY).status_code == 404


def test_integers_at_the_64_bit_limits_are_kept_in_meta(any_api: ApiClient) -> None:
    raw = json.dumps({"value": CANARY, "meta": {"max": 2**63 - 1, "min": -(2**63)}})
    created = _send(any_api, "PUT", KEY, raw)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["meta"] == {"max": 2**63 - 1, "min": -(2**63)}
    assert CANARY not in created.get_data(as_text=True)


def test_bad_json_with_a_bad_token_is_401_and_audited(api: ApiClient) -> None:
    bodies = ["[" * 100_000 + "]" * 100_000, '{"value": "' + SURROGATE + '"}', '{"n": ' + "9" * 5000 + "}"]
    for n, raw in enumerate(bodies):
        request_id = f"bad-json-{n}"
        problem(_send(api, "PUT", KEY, raw, "spr_forged", **{"X-Request-ID": request_id}), 401)
        events = [e for e in api.events() if e.request_id == request_id]
        assert [(e.action, e.outcome) for e in events] == [(AuditAction.AUTHENTICATE, Outcome.DENIED)]


def test_the_unexpected_error_line_escapes_the_path(api: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    def broken(rest: str) -> str:
        raise RuntimeError("a bug")

    api.app.add_url_rule("/v1/broken/<rest>", view_func=broken)
    forged = "x\n2026-01-01 ERROR sprongus.api: admin logged in\x00"
    with caplog.at_level(logging.ERROR, logger="sprongus.api"):
        answer = problem(api.call("GET", "/v1/broken/" + forged.replace("\n", "%0A").replace("\x00", "%00")), 500)
    assert answer["type"] == "urn:sprongus:problem:internal"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sprongus.api"]
    assert "\n" not in line and "\x00" not in line, line
    assert "x\\n2026-01-01 ERROR" in line and "\\x00" in line


def test_the_access_log_line_escapes_the_path_and_address(make_api: Callable[..., ApiClient],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    api = make_api(SPRONGUS_TRUSTED_PROXIES="1")
    with caplog.at_level(logging.INFO, logger="sprongus.api.access"):
        api.call("GET", "/v1/secrets/project/p1/x%0A%7B%22forged%22%3A1%7D",
                 headers={"X-Forwarded-For": '198.51.100.7", "status": 200, "x\x00": "'})
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sprongus.api.access"]
    assert "\n" not in line and "\x00" not in line, line
    fields = json.loads(line)
    assert fields["path"] == '/v1/secrets/project/p1/x\n{"forged":1}' and fields["status"] == 422
    assert fields["client"] == '198.51.100.7", "status": 200, "x\x00": "'


@pytest.mark.parametrize(("given", "kept"), [
    ("a", True), ("A.b_c-9", True), ("x" * 64, True),
    ("x" * 65, False), ("has:colon", False), ("has space", False), ("é-accent", False), ("", False),
    ('"},"actor":"root', False), (CANARY + "<script>", False),
])
def test_a_request_id_is_kept_only_if_it_is_short_and_plain(api: ApiClient, given: str, kept: bool) -> None:
    response = api.call("GET", KEY, "spr_forged", headers={"X-Request-ID": given})
    echoed = response.headers["X-Request-ID"]
    assert (echoed == given) is kept
    (event,) = [e for e in api.events() if e.action is AuditAction.AUTHENTICATE]
    assert event.request_id == echoed


def test_idempotency_fingerprints_use_a_key_derived_from_but_not_equal_to_the_value_hmac_key(
        make_api: Callable[..., ApiClient]) -> None:
    api = make_api(sqlite=True)
    body = json.dumps({"value": CANARY}).encode()
    assert _send(api, "PUT", KEY, body, **{"Idempotency-Key": "k-1"}).status_code == 201
    assert api.home is not None
    with sqlite3.connect(api.home / "vault.db") as db:
        (stored,) = db.execute("SELECT fingerprint FROM idempotency_key").fetchone()
    db.close()
    keys = api.container.hmac_keys()
    key_id = keys.current_key_id()
    value_key = keys.key(key_id)
    grants = b"secrets:read,secrets:reveal,secrets:write|p1|"  # what alice may see: part of the request
    material = b"\n".join([b"PUT", KEY.encode(), grants, body])
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"sprongus idempotency fingerprint v1").derive(value_key)
    assert derived != value_key
    assert stored != f"hmac:{key_id}:" + base64.b64encode(hmac.digest(value_key, material, "sha256")).decode()
    assert stored == f"hmac:{key_id}:" + base64.b64encode(hmac.digest(derived, material, hashlib.sha256)).decode()
    replay = _send(api, "PUT", KEY, body, **{"Idempotency-Key": "k-1"})
    assert replay.headers["Idempotent-Replayed"] == "true"
