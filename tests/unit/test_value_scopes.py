"""Value scopes: what is sent back to a caller is scrubbed against that caller's own values only; logs against all.

A mask in an answer that depended on other requests' values was an oracle (guess a value, see `********`).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sprongus.domain import errors as e
from sprongus.domain.redaction import RedactingFilter, scrub_answer, scrub_text
from sprongus.domain.values import MASK, SecretValue, close_value_scope, open_value_scope
from sprongus.service.parallel import BoundedPool


@contextmanager
def value_scope() -> Iterator[None]:
    token = open_value_scope()
    try:
        yield
    finally:
        close_value_scope(token)


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"  # no other test's live value can be inside it


def test_an_answer_masks_its_own_request_values_and_never_another_requests() -> None:
    other_text, own_text = unique("other"), unique("own")
    other_ready, probe_done = threading.Event(), threading.Event()

    def other_request() -> None:  # another tenant's request, in flight on another thread
        with value_scope():
            alive = SecretValue(other_text)
            other_ready.set()
            assert probe_done.wait(10)
            assert alive.reveal() == other_text

    worker = threading.Thread(target=other_request)
    worker.start()
    try:
        assert other_ready.wait(10)
        with value_scope():
            own = SecretValue(own_text)
            text = f"guess {other_text} / echo {own_text}"
            assert scrub_answer(text) == f"guess {other_text} / echo {MASK}"
            assert scrub_text(text) == f"guess {other_text} / echo {MASK}"  # inside a scope: the same rule
            assert own.reveal() == own_text
    finally:
        probe_done.set()
        worker.join(10)


def test_outside_a_scope_answers_mask_nothing_and_the_cli_masks_everything() -> None:
    alive = SecretValue(unique("cli"))
    text = f"error: {alive.reveal()}"
    assert scrub_answer(text) == text  # no request: nothing of anyone's to mask, and no oracle
    assert scrub_text(text) == f"error: {MASK}"  # the local CLI: one user, the whole process


def test_logs_mask_every_live_value_whatever_scope_made_it(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.value_scopes")
    logger.addFilter(RedactingFilter())
    with value_scope():
        elsewhere = SecretValue(unique("elsewhere"))
    with value_scope(), caplog.at_level(logging.INFO, logger="test.value_scopes"):
        logger.info("line with %s", elsewhere.reveal())
    assert elsewhere.reveal() not in caplog.text and MASK in caplog.text


def test_values_opened_in_the_pool_join_the_callers_scope() -> None:
    texts = [unique(f"pooled{i}") for i in range(4)]
    with value_scope():
        values = BoundedPool(4).map(SecretValue, texts)
        answer = scrub_answer(" ".join(texts))
        assert answer == " ".join([MASK] * 4)
        assert [v.reveal() for v in values] == texts
    assert scrub_answer(" ".join(texts)) == " ".join(texts)  # the scope is closed: nothing carried over


def test_a_closed_scope_leaves_nothing_for_the_next_request_on_the_thread() -> None:
    first = unique("first")
    with value_scope():
        kept = SecretValue(first)
    with value_scope():
        assert scrub_answer(first) == first
    assert kept.reveal() == first


@pytest.mark.parametrize(("error", "public"), [
    (e.NotFound("secret guessed-name not found in project:p1"), "no such secret, or a scope this token may not act on"),
    (e.NotFound("scope user:guess not found"), "no such secret, or a scope this token may not act on"),
    (e.Conflict("secret guessed-name was created concurrently"),
     "the secret changed while this request ran; read it again and retry"),
    (e.KeyProviderError("no configured key provider holds master key guess"),
     "the master key could not be used; the server log has the cause"),
    (e.StorageError("database error: Key (key_name)=(guess) already exists"),
     "the database is unavailable or refused the request; nothing was changed"),
    (e.IntegrityError("secret guess in project:p1 failed its checksum; not exported"),
     "integrity check failed: data tampered, corrupted or wrong key"),
    (e.PreconditionFailed("If-Match: the current version is 3"), "If-Match: the current version is 3"),
    (e.ValidationError("items[2].key", "repeats the scope and key of an earlier item"),
     "items[2].key: repeats the scope and key of an earlier item"),
])
def test_public_details_repeat_no_request_text(error: e.SprongusError, public: str) -> None:
    assert error.public_detail == public
    assert "guess" not in error.public_detail
