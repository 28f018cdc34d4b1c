"""The canary plaintext never shows up where it must not (docs/design.md: crypto format, never)."""

from __future__ import annotations

import dataclasses
import json
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from sprongus.domain.errors import AuditUnavailable, Conflict, IntegrityError, SprongusError, ValidationError
from sprongus.domain.import_item import ImportItem, parse_items
from sprongus.domain.redaction import RedactingFilter, scrub, scrub_text
from sprongus.domain.scope import Scope
from sprongus.domain.values import MASK, SecretValue
from tests.harness import CANARY, Harness, make_harness, owner

HERE = Scope.project("p1")
log = logging.getLogger("sprongus.test.leaks")


@pytest.fixture
def h() -> Harness:
    harness = make_harness()
    harness.secrets.set(owner(), HERE, "canary", SecretValue(CANARY), {"provider": "notion"})
    return harness


def clean(text: str) -> None:
    assert CANARY not in text


def test_secret_value_never_shows_its_plaintext() -> None:
    value = SecretValue(CANARY)
    old_style = "%s %r" % (value, value)  # noqa: UP031 - %-formatting must be masked too
    for text in (repr(value), str(value), f"{value}", f"{value!r}", f"{value:>50}", old_style,
                 str([value]), str({"v": value})):
        clean(text)
    assert value.reveal() == CANARY
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(value)


def test_views_and_records_are_masked(h: Harness) -> None:
    view = h.secrets.get(owner(), HERE, "canary")
    record = h.uow.repository.get(HERE, "canary")
    assert record is not None
    for text in (repr(view), str(view), json.dumps(view.to_dict()), repr(record), str(record),
                 str(dataclasses.asdict(record))):
        clean(text)
    # at rest: no field of the stored row holds the plaintext, in text or bytes
    for field in dataclasses.fields(record):
        stored = getattr(record, field.name)
        if isinstance(stored, bytes):
            assert CANARY.encode() not in stored
        else:
            clean(str(stored))
    revealed = h.secrets.get(owner(), HERE, "canary", reveal=True)
    clean(repr(revealed))
    assert revealed.to_dict()["value"] == CANARY


def test_list_and_export_output_hold_no_value(h: Harness) -> None:
    page = h.secrets.list(owner(), HERE, with_meta=True)
    exported = h.transfer.export(owner(), HERE)
    bundle = h.transfer.export(owner(), HERE, bundle=True, passphrase=SecretValue("pass-phrase-x")).bundle
    clean(repr(page))
    clean(json.dumps([v.to_dict() for v in page.items]))
    clean(repr(exported))
    clean(json.dumps([v.to_dict() for v in exported.items]))
    clean(json.dumps(bundle))
    assert "pass-phrase-x" not in json.dumps(bundle)


def _raised(action: Callable[[], Any]) -> SprongusError:
    with pytest.raises(SprongusError) as err:
        action()
    return err.value


def _error_paths(h: Harness) -> Iterator[tuple[str, Callable[[], Any]]]:
    big = CANARY * 2000
    yield "oversize value", lambda: SecretValue(big)
    yield "oversize bytes", lambda: SecretValue.from_bytes(big.encode())
    yield "invalid utf-8", lambda: SecretValue.from_bytes(CANARY.encode() + b"\xff")
    yield "lone surrogate", lambda: SecretValue(CANARY + "\ud800")
    yield "oversize import item", lambda: parse_items([{"scope": "system", "key": "k", "value": big}])
    yield "bad key beside a value", lambda: parse_items([{"scope": "system", "key": "9", "value": CANARY}])
    yield "value where meta goes", lambda: h.secrets.set(owner(), HERE, "k", SecretValue(CANARY), {"x": CANARY * 9})
    yield "duplicate import", lambda: h.transfer.import_(
        owner(), [ImportItem(HERE, "d", SecretValue(CANARY)), ImportItem(HERE, "d", SecretValue(CANARY))],
        allow_plaintext=True)
    yield "stale If-Match", lambda: h.secrets.set(owner(), HERE, "canary", SecretValue(CANARY), expected_version=9)
    yield "bundle, wrong passphrase", lambda: h.transfer.import_(
        owner(), bundle=h.transfer.export(owner(), HERE, bundle=True, passphrase=SecretValue("right-one")).bundle,
        passphrase=SecretValue("wrong-one"))


def test_error_messages_and_tracebacks_hold_no_value(h: Harness) -> None:
    kinds = set()
    for name, action in _error_paths(h):
        exc = _raised(action)
        kinds.add(type(exc))
        text = "".join(traceback.format_exception(exc))
        for shown in (str(exc), repr(exc), repr(exc.args), text, str(getattr(exc, "errors", ""))):
            assert CANARY not in shown, name
    assert {ValidationError, Conflict, IntegrityError} <= kinds


def test_integrity_and_audit_failures_on_reveal_hold_no_value(h: Harness) -> None:
    row = h.uow.repository.get(HERE, "canary")
    assert row is not None
    h.audit.available = False
    exc = _raised(lambda: h.secrets.get(owner(), HERE, "canary", reveal=True))
    assert isinstance(exc, AuditUnavailable)
    clean("".join(traceback.format_exception(exc)))
    h.audit.available = True
    h.uow.repository.rows[HERE]["canary"] = replace(row, hmac=row.hmac[:-4] + "AAA=" if row.hmac else "x:y")
    exc = _raised(lambda: h.secrets.get(owner(), HERE, "canary", reveal=True))
    assert isinstance(exc, IntegrityError)
    clean("".join(traceback.format_exception(exc)))


def test_audit_events_hold_no_value(h: Harness) -> None:
    s = h
    s.secrets.set(owner(), HERE, "canary", SecretValue(CANARY))
    s.secrets.get(owner(), HERE, "canary", reveal=True)
    s.rotation.rotate(owner(), HERE)
    s.transfer.export(owner(), HERE, bundle=True)
    s.transfer.import_(owner(), [ImportItem(HERE, "imported", SecretValue(CANARY))], allow_plaintext=True)
    s.secrets.unset(owner(), HERE, "canary")
    assert len(h.audit.events) >= 7
    for event in h.audit.events:
        clean(str(event))
        clean(repr(event))
        for field in dataclasses.fields(event):
            clean(str(getattr(event, field.name)))


@pytest.fixture
def redacted(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter())
    return caplog


def test_logs_are_scrubbed_of_live_plaintexts(redacted: pytest.LogCaptureFixture) -> None:
    value = SecretValue(CANARY)
    log.debug(f"loaded token {value.reveal()} from env")  # the accident under test
    log.info("token is %s", value.reveal())
    log.warning("value object %s / %r", value, value)
    log.error("broken format %s %s", value.reveal())  # a format error must not bypass the filter
    try:
        raise RuntimeError(f"could not parse {value.reveal()}")
    except RuntimeError:
        log.exception("parsing failed")
    try:
        try:
            raise ValueError(value.reveal())
        except ValueError as inner:
            raise KeyError("wrapper") from inner
    except KeyError:
        log.error("chained", exc_info=True)
    log.debug("stack", stack_info=True)
    assert "loaded token" in redacted.text and "parsing failed" in redacted.text and "chained" in redacted.text
    assert "RuntimeError" in redacted.text
    assert MASK in redacted.text
    clean(redacted.text)
    for record in redacted.records:
        clean(record.getMessage())
        clean(record.exc_text or "")


def test_logs_keep_text_that_is_not_a_live_plaintext(redacted: pytest.LogCaptureFixture) -> None:
    kept = SecretValue("abc")  # shorter than the scrub minimum
    log.info("just the key name notion.api_token and %s", kept.reveal())
    assert "notion.api_token" in redacted.text and "abc" in redacted.text


def test_scrub_masks_structures() -> None:
    value = SecretValue(CANARY)
    provider = f"notion-{uuid.uuid4().hex}"  # unique: other tests' live values must not be inside it
    data = {"keyName": "k", "value": "anything", "Password": "p", "token": None,
            "nested": [{"secret": 1}, (value, f"in text {CANARY} here"), {"meta": {"provider": provider}}]}
    out = scrub(data)
    assert out["keyName"] == "k" and out["value"] == MASK and out["Password"] == MASK and out["token"] is None
    assert out["nested"][0] == {"secret": MASK}
    assert out["nested"][1] == (MASK, f"in text {MASK} here")
    assert out["nested"][2] == {"meta": {"provider": provider}}
    clean(json.dumps(out))
    assert data["value"] == "anything"  # a copy: the input is left alone
    assert scrub_text("x extra-secret y", extra=["extra-secret"]) == f"x {MASK} y"


def test_an_equal_value_stays_tracked_after_its_twin_dies() -> None:
    first = SecretValue(CANARY + "-twin")
    second = SecretValue(CANARY + "-twin")
    del first
    import gc

    gc.collect()
    assert scrub_text(f"log {second.reveal()} line") == f"log {MASK} line"
