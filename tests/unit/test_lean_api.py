"""The hot endpoints' fast lane (entrypoints/api/lean.py) answers exactly as flask-smorest would.

- `record_body` writes what `SecretRecord().dump` writes, byte for byte, for generated views;
- `lean_arguments` gives the view what webargs gives it, and the same error answers, for a matrix of requests with
  and without input (the fast lane is taken only for no input, and it is taken);
- `lean_response` answers like `blp.response`, including a view's own Response and its status and headers;
- both document the operation exactly as their flask-smorest twins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, Response, jsonify
from flask_smorest import Api, Blueprint
from hypothesis import given, settings
from hypothesis import strategies as st
from webargs.flaskparser import FlaskParser

from sprongus.domain.records import SecretView
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.api import schemas as s
from sprongus.entrypoints.api.app import ApiJsonProvider
from sprongus.entrypoints.api.lean import lean_arguments, lean_response, no_json_body, no_query

CANARY = "CANARY-lean-0b7d42"

names = st.from_regex(r"[a-z][a-z0-9_-]{0,12}(\.[a-z0-9_-]{1,6}){0,2}", fullmatch=True)
owners = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,20}", fullmatch=True)
scopes = st.one_of(st.just(Scope.system()), owners.map(Scope.user), owners.map(Scope.project))
moments = st.one_of(st.none(), st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                                            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), None])))
meta_values = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), st.text(max_size=20))
views = st.builds(
    SecretView, scope=scopes, key=names, version=st.integers(0, 10**9), created_at=moments, updated_at=moments,
    last_rotated_at=moments, meta=st.dictionaries(st.text(min_size=1, max_size=10), meta_values, max_size=4),
    master_key_id=st.just("k1"), value=st.one_of(st.none(), st.text(max_size=30).map(SecretValue)),
    damaged=st.booleans(), deleted_at=moments)


@settings(max_examples=300, deadline=None)
@given(views)
def test_record_body_is_the_schemas_dump_byte_for_byte(view: SecretView) -> None:
    provider = ApiJsonProvider(Flask("t"))
    assert provider.dumps(s.record_body(view)) == provider.dumps(s.SecretRecord().dump(view))


def test_a_revealed_canary_is_only_in_value_and_a_masked_one_nowhere() -> None:
    now = datetime.now(UTC)
    shown = SecretView(Scope.user("a"), "k", 3, now, now, None, {"env": "prod"}, "k1", SecretValue(CANARY))
    assert s.record_body(shown)["value"] == CANARY and s.record_body(shown)["masked"] is False
    masked = SecretView(Scope.user("a"), "k", 3, now, now, None, {}, "k1")
    assert CANARY not in json.dumps(s.record_body(masked)) and s.record_body(masked)["value"] == "********"


# --- arguments: the fast lane against webargs, request by request -------------------------------------------------


@pytest.fixture
def twins() -> Iterator[tuple[Any, Api]]:
    """One app with each operation twice: /full/* through flask-smorest, /lean/* through lean.py."""
    app = Flask("twins")
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = Api(app)
    blp = Blueprint("t", __name__)

    def echo(*args: Any, **kwargs: Any) -> Response:
        return jsonify({"args": list(args), "kwargs": kwargs})

    def response_view(kind: str) -> Any:
        def view(**_: Any) -> Any:
            now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
            record = SecretView(Scope.project("p"), "k", 7, now, now, None, {"a": 1}, "k1")
            if kind == "tuple":
                return record, 201, {"ETag": '"7"'}
            if kind == "response":
                answer = jsonify({"other": True})
                answer.status_code = 202
                return answer, None, {"X-Extra": "1"}
            return record
        view.__name__ = f"view_{kind}"
        return view

    for lane in ("full", "lean"):
        def args_of(schema: Any, nothing: Any, lane: str = lane, **kw: Any) -> Any:
            if lane == "full":
                return blp.arguments(schema, **kw)
            return lean_arguments(blp, schema, nothing_given=nothing, **kw)

        blp.route(f"/{lane}/query", methods=["GET"], endpoint=f"{lane}_query")(
            args_of(s.VersionQuery(), no_query, location="query", as_kwargs=True)(echo))
        blp.route(f"/{lane}/body", methods=["POST"], endpoint=f"{lane}_body")(
            args_of(s.RevealBody(), no_json_body, required=False)(echo))
        for kind in ("plain", "tuple", "response"):
            # 203, not 200: a lane that left the decorator's status out would still answer Flask's default 200
            decorate = (blp.response(203, s.SecretRecord, description="d") if lane == "full"
                        else lean_response(blp, 203, s.SecretRecord, s.record_body, description="d"))
            blp.route(f"/{lane}/answer/{kind}", methods=["GET"], endpoint=f"{lane}_answer_{kind}")(
                decorate(response_view(kind)))
    api.register_blueprint(blp)
    yield app.test_client(), api


QUERIES = ["", "?", "?version=2", "?version=0", "?version=abc", "?version=", "?version=1&version=2", "?other=1"]
BODIES: list[tuple[bytes | None, str | None]] = [
    (None, None), (b"", "application/json"), (b"{}", "application/json"), (b"{}", "text/plain"),
    (b"{}", "application/json; charset=utf-8"), (b"{}", "application/merge-patch+json"), (b" {}", "application/json"),
    (b'{"version": 2}', "application/json"), (b'{"oneTime": true}', "application/json"),
    (b'{"version": "2"}', "application/json"), (b"[]", "application/json"), (b"nope", "application/json"),
    (b'{"unknown": 1}', "application/json"), (b"x" * 100, "text/plain")]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = FlaskParser.parse

    def counted(self: FlaskParser, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FlaskParser, "parse", counted)
    return calls


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_gets_what_webargs_gives_and_no_query_skips_it(twins: tuple[Any, Api], parses: list[int],
                                                               query: str) -> None:
    client, _ = twins
    full = client.get(f"/full/query{query}")
    parses.clear()
    lean = client.get(f"/lean/query{query}")
    assert (lean.status_code, lean.get_json()) == (full.status_code, full.get_json())
    assert len(parses) == (0 if query in ("", "?") else 1)


@pytest.mark.parametrize(("body", "content_type"), BODIES)
def test_a_body_gets_what_webargs_gives_and_no_input_skips_it(twins: tuple[Any, Api], parses: list[int],
                                                              body: bytes | None, content_type: str | None) -> None:
    client, _ = twins
    send: dict[str, Any] = {} if body is None else {"data": body, "content_type": content_type}
    full = client.post("/full/body", **send)
    parses.clear()
    lean = client.post("/lean/body", **send)
    assert (lean.status_code, lean.get_json(silent=True), lean.data) == (full.status_code, full.get_json(silent=True),
                                                                        full.data)
    no_input = body is None or (body == b"{}" and content_type != "text/plain")
    assert len(parses) == (0 if no_input else 1)


@pytest.mark.parametrize("kind", ["plain", "tuple", "response"])
def test_an_answer_is_flask_smorests_status_headers_and_body(twins: tuple[Any, Api], kind: str) -> None:
    client, _ = twins
    full, lean = client.get(f"/full/answer/{kind}"), client.get(f"/lean/answer/{kind}")
    assert (lean.status_code, lean.data) == (full.status_code, full.data)
    assert {k: v for k, v in lean.headers.items()} == {k: v for k, v in full.headers.items()}


def test_the_documentation_is_the_same(twins: tuple[Any, Api]) -> None:
    _, api = twins
    paths = api.spec.to_dict()["paths"]

    def doc(path: str) -> str:
        return json.dumps(paths[path], sort_keys=True).replace("lean_", "full_").replace("Lean", "Full")

    for path in ("query", "body", "answer/plain", "answer/tuple", "answer/response"):
        assert doc(f"/lean/{path}") == doc(f"/full/{path}")
