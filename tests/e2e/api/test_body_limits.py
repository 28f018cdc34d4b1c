"""What a body may cost before its caller is authorized: its size, and the walk the JSON rules make over it.

A request body is at most 1 MiB; an import may send 32 MiB, once its token is known to write. Before, every
endpoint took 32 MiB and walked it value by value (1.4 s for two million list items) for any token, before any
permission was checked; an import's item list was loaded item by item before it was counted.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import fields

from sprongus.domain.errors import ValidationError
from sprongus.domain.text import utf8_encodable
from sprongus.entrypoints.api import input_rules
from sprongus.entrypoints.api.input_rules import BODY_SIZE_RULE, MAX_DEPTH, SMALL_BODY, check_json
from tests.e2e.api.conftest import KEY, READ, REVEAL, ApiClient, problem
from tests.harness import CANARY

BATCH = "/v1/secrets:reveal"
IMPORT = "/v1/secrets:import"
P1 = {"ownerType": "project", "ownerId": "p1"}


def _oversized(size: int = SMALL_BODY + 1) -> bytes:
    """A JSON list of integers just over `size` bytes: cheap to send, costly to walk."""
    count = size // 2 + 1
    return b"[" + b"1," * (count - 1) + b"1]"


class Walks:
    """Counts check_json runs and the values they looked at one by one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bodies = 0
        self.values = 0
        real_check, real_value = input_rules.check_json, input_rules._check_value

        def check(body: bytes) -> None:
            self.bodies += 1
            real_check(body)

        def value(node: Any, field: str) -> None:
            self.values += 1
            real_value(node, field)

        monkeypatch.setattr(input_rules, "check_json", check)
        monkeypatch.setattr(input_rules, "_check_value", value)


@pytest.mark.parametrize(("method", "path"), [("POST", BATCH), ("PUT", KEY), ("POST", KEY + ":reveal")])
def test_a_body_over_1_mib_is_413_before_it_is_read(api: ApiClient, monkeypatch: pytest.MonkeyPatch,
                                                    method: str, path: str) -> None:
    walks = Walks(monkeypatch)
    response = api.call(method, path, data=_oversized(), content_type="application/json")
    body = problem(response, 413)
    assert body["detail"] == BODY_SIZE_RULE
    assert walks.bodies == 0


def test_an_import_over_1_mib_from_a_token_that_may_not_write_is_413(api: ApiClient,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    walks = Walks(monkeypatch)
    reader = api.token("alice", (READ, REVEAL))
    items = [{"scope": "project:p1", "key": f"k{i}", "value": "v" * 400} for i in range(3000)]
    sent = json.dumps({"allowPlaintext": True, "items": items}).encode()
    assert len(sent) > SMALL_BODY
    problem(api.call("POST", IMPORT, reader, data=sent, content_type="application/json"), 413)
    assert walks.bodies == 0
    done = api.call("POST", IMPORT, data=sent, content_type="application/json")  # alice may write: 32 MiB
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["added"] == 3000


def test_the_largest_value_still_fits_even_fully_escaped(api: ApiClient) -> None:
    """A 64 KiB value of control characters is 384 KiB of JSON escapes: well inside 1 MiB."""
    value = "\x01" * (64 * 1024)
    sent = json.dumps({"value": value}).encode()
    assert len(sent) > 6 * 64 * 1024
    assert api.call("PUT", KEY, data=sent, content_type="application/json").status_code in (200, 201)
    assert api.reveal(KEY).get_json()["value"] == value


def test_an_anonymous_redeem_is_held_to_4_kib(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    walks = Walks(monkeypatch)
    response = api.client.post("/v1/secrets:redeem", data=_oversized(4096), content_type="application/json")
    assert response.status_code == 413 and walks.bodies == 0
    assert api.redeem("sprr_" + "A" * 43).status_code == 410  # a token's body is far below it


def _chunked(api: ApiClient, method: str, path: str, body: bytes) -> Any:
    """Sent as a server behind a proxy sees a chunked body: no Content-Length, the stream marked as ending."""
    stream = io.BytesIO(body)
    return api.client.open(path, method=method, input_stream=stream, content_type="application/json",
                           headers={"Authorization": f"Bearer {api.alice}", "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_over_the_limit_is_413_not_its_first_megabyte(api: ApiClient) -> None:
    """Werkzeug read an unsized body up to the limit and stopped: `{"value": "first"}` padded to 1 MiB, then
    more, was stored as "first" while a proxy saw the whole body."""
    head = b'{"value": "first"}'
    body = head + b" " * (SMALL_BODY - len(head)) + b'{"value": "second"}'
    problem(_chunked(api, "PUT", KEY, body), 413)
    assert api.call("GET", KEY).status_code == 404
    assert _chunked(api, "PUT", KEY, head).status_code == 201  # a chunked body under the limit is read as ever
    assert api.reveal(KEY).get_json()["value"] == "first"


def test_too_many_import_items_are_counted_before_any_item_is_loaded(api: ApiClient,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = []
    real = fields.Dict._deserialize

    def deserialize(self: fields.Dict, *args: Any, **kwargs: Any) -> Any:
        loaded.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(fields.Dict, "_deserialize", deserialize)
    items = [{"scope": "project:p1", "key": f"k{i}", "value": CANARY} for i in range(5001)]
    response = api.call("POST", IMPORT, json={"allowPlaintext": True, "items": items})
    detail = problem(response, 422)
    assert list(detail["errors"]) == ["items"] and CANARY not in response.get_data(as_text=True)
    assert loaded == []


def test_a_plain_body_is_walked_for_depth_only(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    walks = Walks(monkeypatch)
    keys = [f"k{i:04d}" for i in range(1000)]
    assert api.call("POST", BATCH, json={**P1, "keys": keys}).status_code == 200
    assert (walks.bodies, walks.values) == (1, 0)
    too_long = api.call("POST", BATCH, json={**P1, "keys": keys[:1], "n": 2**64})  # a long number: every value
    assert problem(too_long, 422)["errors"] == {"n": [input_rules.INTEGER_RULE]}
    assert walks.values > 0


# -- check_json agrees with a plain recursive reading of the rules ----------------------------------------------

def _broken_rules(document: Any, depth: int = 0) -> set[str]:
    """The rules as written, read recursively: every rule the document breaks anywhere."""
    if isinstance(document, dict | list):
        if depth + 1 > MAX_DEPTH:
            return {input_rules.DEPTH_RULE}
        broken: set[str] = set()
        if isinstance(document, dict):
            broken |= {input_rules.TEXT_RULE for key in document if not utf8_encodable(key)}
        for child in (document.values() if isinstance(document, dict) else document):
            broken |= _broken_rules(child, depth + 1)
        return broken
    if isinstance(document, int) and not isinstance(document, bool) and not -(2**63) <= document < 2**63:
        return {input_rules.INTEGER_RULE}
    if isinstance(document, str) and not utf8_encodable(document):
        return {input_rules.TEXT_RULE}
    return set()


_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xDFFF), max_size=4)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     _TEXT)
_DOCUMENTS = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)), max_leaves=40)


def _deep(levels: int, innermost: Any = 1) -> Any:
    document: Any = innermost
    for _ in range(levels):
        document = [document]
    return document


_DEEP = st.integers(min_value=MAX_DEPTH - 2, max_value=MAX_DEPTH + 2)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_DOCUMENTS, _DEEP.map(_deep), _DEEP.map(lambda n: _deep(n, [])),
                 _DEEP.map(lambda n: _deep(n, {})), _DEEP.map(lambda n: [1, _deep(n, {}), []])))
def test_check_json_refuses_exactly_what_the_rules_refuse(document: Any) -> None:
    body = json.dumps(document).encode()  # ensure_ascii: a lone surrogate travels as a \\uD8xx escape
    broken = _broken_rules(document)
    try:
        check_json(body)
    except ValidationError as refused:
        assert refused.rule in broken, (body, refused.rule)
        return
    assert not broken, (body, broken)
