"""Sealer.seal's `ahead`: a value sealed before the write transaction is used only for the version and the master
key it was sealed for; otherwise the value is sealed again (real envelope and keys from the in-memory harness)."""

from __future__ import annotations

import time
from dataclasses import replace

from sprongus.adapters.random_os import OsRandomSource
from sprongus.domain.errors import KeyProviderUnavailable
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.service.seal_ahead import SealAhead
from sprongus.service.sealing import Sealer
from sprongus.service.secrets import SecretOps
from tests.harness import CANARY, make_harness, owner

SCOPE = Scope.project("p1")


class CheckedKey:
    """VaultKeys' part in sealing: the one key id this process checked against the vault."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    def is_checked(self, master_key_id: str) -> bool:
        return master_key_id == self.key_id

    def confirm(self, master_key_id: str) -> None:
        if master_key_id != self.key_id:
            raise KeyProviderUnavailable("the master key changed while this request ran")


def test_the_seal_made_ahead_is_used_for_its_version_and_key() -> None:
    h = make_harness()
    checked = CheckedKey(h.deps.sealer.envelope.current_master_key_id())
    sealer = Sealer(h.deps.sealer.envelope, h.clock, OsRandomSource(), checked)  # type: ignore[arg-type]
    ahead = sealer.seal_ahead(None, SCOPE, "k", SecretValue(f"{CANARY}1"))
    record = sealer.seal(None, SCOPE, "k", SecretValue(f"{CANARY}1"), None, ahead=ahead)
    assert (record.version, record.dek_wrapped, record.ciphertext) == (1, ahead.sealed.dek_wrapped,
                                                                        ahead.sealed.ciphertext)
    assert sealer.open(record).reveal() == f"{CANARY}1"


def test_a_seal_for_a_number_taken_meanwhile_is_sealed_again_for_the_next() -> None:
    h = make_harness()
    checked = CheckedKey(h.deps.sealer.envelope.current_master_key_id())
    sealer = Sealer(h.deps.sealer.envelope, h.clock, OsRandomSource(), checked)  # type: ignore[arg-type]
    ahead = sealer.seal_ahead(None, SCOPE, "k", SecretValue(f"{CANARY}2"))  # for version 1
    taken = sealer.seal(None, SCOPE, "k", SecretValue(f"{CANARY}1"), None)  # another write took version 1
    record = sealer.seal(taken, SCOPE, "k", SecretValue(f"{CANARY}2"), None, ahead=ahead)
    assert record.version == 2 and record.dek_wrapped != ahead.sealed.dek_wrapped
    assert sealer.open(record).reveal() == f"{CANARY}2"  # its AAD names version 2


def test_a_seal_under_a_key_this_process_no_longer_uses_is_sealed_again_not_refused() -> None:
    h = make_harness()
    envelope = h.deps.sealer.envelope
    checked = CheckedKey(envelope.current_master_key_id())
    sealer = Sealer(envelope, h.clock, OsRandomSource(), checked)  # type: ignore[arg-type]
    ahead = sealer.seal_ahead(None, SCOPE, "k", SecretValue(f"{CANARY}3"))
    h.add_master_key()  # the process adopted a newer key before the transaction opened
    checked.key_id = envelope.current_master_key_id()
    assert ahead.sealed.master_key_id != checked.key_id
    record = sealer.seal(None, SCOPE, "k", SecretValue(f"{CANARY}3"), None, ahead=ahead)
    assert record.master_key_id == checked.key_id  # before: "the master key changed", 503, for nothing
    assert sealer.open(record).reveal() == f"{CANARY}3"


def test_one_key_has_one_turn_and_keys_spread_over_the_stripes() -> None:
    turns = SealAhead()
    assert turns.lock_of(SCOPE, "a") is turns.lock_of(Scope.project("p1"), "a")
    assert len({id(turns.lock_of(SCOPE, f"k{n}")) for n in range(200)}) > 32


def test_a_write_that_waits_too_long_for_its_turn_seals_inside_its_transaction_instead() -> None:
    """Keys share turns by hash: a write never waits on another key's KMS call for longer than the turn's wait."""
    h = make_harness()
    turns = SealAhead(stripes=1, turn_wait=0.2)
    ops = SecretOps(replace(h.deps, seal_ahead=turns))
    with turns.lock_of(SCOPE, "other"):  # another key's write holds the only stripe (a KMS call that hangs)
        started = time.monotonic()
        result = ops.set(owner(), SCOPE, "k", SecretValue(f"{CANARY}4"))
        waited = time.monotonic() - started
    assert result.view.version == 1 and 0.2 <= waited < 5
    assert ops.get(owner(), SCOPE, "k", reveal=True).value.reveal() == f"{CANARY}4"
    with turns.turn(SCOPE, "k") as mine:  # the turn was given back
        assert mine
