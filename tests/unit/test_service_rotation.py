"""Per-secret rotation, master-key rotation and verify (docs/design.md#crypto-format)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sprongus.domain.envelope import aad_for, checksum
from sprongus.domain.errors import KeyProviderUnavailable, NotFound, PermissionDenied
from sprongus.domain.principal import Permission
from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import WrappedKey
from sprongus.service.sealing import sealed_of
from tests.harness import ALL_PERMISSIONS, Harness, make_harness, owner, tenant

ME, OTHER = Scope.user("alice"), Scope.project("p1")


def fill(h: Harness, scope: Scope, keys: list[str]) -> None:
    for key in keys:
        h.secrets.set(owner(), scope, key, SecretValue(f"value-of-{key}"))


def stored(h: Harness, scope: Scope, key: str) -> SecretRecord:
    record = h.uow.repository.get(scope, key)
    assert record is not None
    return record


def dek_of(h: Harness, r: SecretRecord) -> bytes:
    return h.deps.sealer.envelope.unwrap_dek(sealed_of(r), aad_for(r.scope, r.key, r.version))


def value_of(h: Harness, scope: Scope, key: str) -> str:
    view = h.secrets.get(owner(), scope, key, reveal=True)
    assert view.value is not None
    return view.value.reveal()


def test_rotate_one_key_gives_new_dek_nonce_and_version(harness: Harness) -> None:
    fill(harness, ME, ["a", "b"])
    before, untouched = stored(harness, ME, "a"), stored(harness, ME, "b")
    harness.clock.advance(3600)
    report = harness.rotation.rotate(owner(), ME, "a")
    after = stored(harness, ME, "a")
    assert report.rotated == 1
    assert after.version == before.version + 1
    assert after.last_rotated_at == harness.clock.now() != before.created_at
    assert after.created_at == before.created_at
    assert after.nonce != before.nonce and after.ciphertext != before.ciphertext
    assert dek_of(harness, after) != dek_of(harness, before)
    assert value_of(harness, ME, "a") == "value-of-a"
    assert stored(harness, ME, "b") == untouched
    rotated_at = after.last_rotated_at
    harness.clock.advance(60)
    harness.secrets.set(owner(), ME, "a", SecretValue("changed"))
    assert stored(harness, ME, "a").last_rotated_at == rotated_at  # a plain set is not a rotation


def test_rotate_missing_key_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        harness.rotation.rotate(owner(), ME, "missing")


def test_rotate_prefix_touches_only_that_prefix(harness: Harness) -> None:
    fill(harness, ME, ["notion.a", "notion.b", "notionx", "gdocs.a"])
    report = harness.rotation.rotate(owner(), ME, prefix="notion.")
    assert report.rotated == 2
    versions = {k: stored(harness, ME, k).version for k in ("notion.a", "notion.b", "notionx", "gdocs.a")}
    assert versions == {"notion.a": 2, "notion.b": 2, "notionx": 1, "gdocs.a": 1}


def test_rotate_whole_scope_in_batches() -> None:
    h = make_harness(batch_size=3)
    keys = [f"k{i:02d}" for i in range(10)]
    fill(h, ME, keys)
    fill(h, OTHER, ["k00"])
    old = {k: stored(h, ME, k) for k in keys}
    report = h.rotation.rotate(owner(), ME)
    assert report.rotated == 10
    for key in keys:
        new = stored(h, ME, key)
        assert new.version == 2 and new.last_rotated_at == h.clock.now()
        assert new.nonce != old[key].nonce and dek_of(h, new) != dek_of(h, old[key])
        assert value_of(h, ME, key) == f"value-of-{key}"
    assert stored(h, OTHER, "k00").version == 1


def test_rotated_before_resumes_an_interrupted_run(harness: Harness) -> None:
    fill(harness, ME, ["a", "b", "c"])
    harness.rotation.rotate(owner(), ME, "c")  # rotated long ago: must be rotated again
    harness.clock.advance(86400)
    started = harness.clock.now()
    harness.rotation.rotate(owner(), ME, "a")  # the run got this far, then crashed
    harness.clock.advance(60)
    report = harness.rotation.rotate(owner(), ME, rotated_before=started)
    assert report.skipped == 1 and report.rotated == 2
    assert {k: stored(harness, ME, k).version for k in "abc"} == {"a": 2, "b": 2, "c": 3}


def test_rotate_master_moves_every_row_and_keeps_values_and_versions() -> None:
    h = make_harness(batch_size=4)
    fill(h, ME, [f"k{i}" for i in range(9)])
    fill(h, Scope.system(), ["sys"])
    h.secrets.set(owner(), ME, "k0", SecretValue("value-of-k0"))  # version 2
    old_id = h.deps.sealer.envelope.current_master_key_id()
    before = {r.key if r.scope == ME else "sys": r for r in h.uow.repository.scan(None, 100)}
    h.add_master_key()
    new_id = h.deps.sealer.envelope.current_master_key_id()
    assert new_id != old_id
    progress: list[tuple[int, int | None]] = []
    kept = h.uow.repository.get_version(ME, "k0", 1)  # the value k0 had before its second set
    assert kept is not None
    report = h.rotation.rotate_master(owner(), progress=lambda done, total: progress.append((done, total)))
    # 10 current rows (pages of 4, 4, 2) and then the 1 kept version (a page of its own): 11 data keys in all.
    assert report.rotated == 11
    assert progress[-1] == (11, 11) and len(progress) == 4
    assert h.uow.count_by_master_key(owner()) == {new_id: 11}
    moved = h.uow.repository.get_version(ME, "k0", 1)
    assert moved is not None and moved.master_key_id == new_id and moved.dek_wrapped != kept.dek_wrapped
    assert (moved.ciphertext, moved.nonce) == (kept.ciphertext, kept.nonce)
    old_value = h.secrets.get(owner(), ME, "k0", reveal=True, version=1).value
    assert old_value is not None and old_value.reveal() == "value-of-k0"
    for key, old in before.items():
        scope = Scope.system() if key == "sys" else ME
        new = stored(h, scope, key)
        assert (new.version, new.ciphertext, new.nonce, new.last_rotated_at) == \
            (old.version, old.ciphertext, old.nonce, old.last_rotated_at)
        assert value_of(h, scope, key) == f"value-of-{key}"
    assert h.rotation.rotate_master(owner()).rotated == 0  # a rerun has nothing left to do


def test_rotate_master_resumes_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_harness(batch_size=2)
    keys = [f"k{i}" for i in range(7)]
    fill(h, ME, keys)
    old_id = h.deps.sealer.envelope.current_master_key_id()
    h.add_master_key()
    new_id = h.deps.sealer.envelope.current_master_key_id()
    real_wrap, calls = h.master.wrap, []

    def flaky_wrap(dek: bytes, aad: bytes) -> WrappedKey:
        calls.append(1)
        if len(calls) == 4:  # inside the second batch
            raise KeyProviderUnavailable("KMS timed out")
        return real_wrap(dek, aad)

    monkeypatch.setattr(h.master, "wrap", flaky_wrap)
    with pytest.raises(KeyProviderUnavailable):
        h.rotation.rotate_master(owner())
    assert h.uow.count_by_master_key(owner()) == {new_id: 2, old_id: 5}  # the first batch stays done
    for key in keys:
        assert value_of(h, ME, key) == f"value-of-{key}"
    report = h.rotation.rotate_master(owner())
    assert report.rotated == 5
    assert h.uow.count_by_master_key(owner()) == {new_id: 7}
    for key in keys:
        assert stored(h, ME, key).version == 1
        assert value_of(h, ME, key) == f"value-of-{key}"


def test_rotate_master_and_verify_are_for_the_vault_operator_only(harness: Harness) -> None:
    fill(harness, Scope.user("bob"), ["theirs"])
    admin = tenant(permissions=ALL_PERMISSIONS | {Permission.ADMIN})
    for caller in (tenant(), admin):  # a token admin sees the system scope, not every tenant's key names
        with pytest.raises(PermissionDenied):
            harness.rotation.rotate_master(caller)
        with pytest.raises(PermissionDenied):
            harness.rotation.verify(caller)
    assert harness.rotation.verify(owner()).ok


def test_verify_passes_on_a_clean_store(harness: Harness) -> None:
    fill(harness, ME, ["a", "b"])
    fill(harness, Scope.system(), ["c"])
    report = harness.rotation.verify(owner())
    assert report.ok and report.checked == 3


def test_verify_reports_a_row_with_bitrot(harness: Harness) -> None:
    fill(harness, ME, ["a", "b", "c"])
    row = stored(harness, ME, "b")
    flipped = bytes([row.ciphertext[0] ^ 1]) + row.ciphertext[1:]
    harness.uow.repository.rows[ME]["b"] = replace(row, ciphertext=flipped)
    report = harness.rotation.verify(owner())
    assert report.checked == 3 and not report.ok
    assert report.failures == [("user:alice", "b", "checksum mismatch")]


def test_verify_reports_a_row_whose_crypto_fields_were_copied_from_another(harness: Harness) -> None:
    fill(harness, ME, ["a", "b"])
    a, b = stored(harness, ME, "a"), stored(harness, ME, "b")
    forged = replace(b, ciphertext=a.ciphertext, nonce=a.nonce, dek_wrapped=a.dek_wrapped, hmac=a.hmac)
    # An attacker with database access can recompute the keyless checksum; decryption must still fail.
    forged = replace(forged, checksum=checksum(sealed_of(forged), aad_for(ME, "b", b.version)))
    harness.uow.repository.rows[ME]["b"] = forged
    report = harness.rotation.verify(owner())
    assert report.failures == [("user:alice", "b", "decryption or hmac failed")]


def test_verify_reports_a_row_wrapped_by_an_unknown_master_key(harness: Harness) -> None:
    fill(harness, ME, ["a"])
    row = stored(harness, ME, "a")
    gone = replace(row, master_key_id="memory:v99")
    gone = replace(gone, checksum=checksum(sealed_of(gone), aad_for(ME, "a", row.version)))
    harness.uow.repository.rows[ME]["a"] = gone
    assert harness.rotation.verify(owner()).failures == [("user:alice", "a", "master key unavailable")]


def test_verify_flags_a_stripped_hmac_and_rotation_signs_it_again(harness: Harness) -> None:
    fill(harness, ME, ["a"])
    row = stored(harness, ME, "a")
    stripped = replace(row, hmac=None)
    sealed = sealed_of(stripped)
    harness.uow.repository.rows[ME]["a"] = replace(stripped, checksum=checksum(sealed, aad_for(ME, "a", row.version)))
    report = harness.rotation.verify(owner())
    assert [(key, reason.split(" ")[0]) for _, key, reason in report.failures] == [("a", "hmac")]
    harness.rotation.rotate(owner(), ME, "a")
    assert stored(harness, ME, "a").hmac is not None and harness.rotation.verify(owner()).ok


def test_a_rotation_that_meets_a_rotate_master_still_writes_its_fresh_data_key() -> None:
    """rotate-master re-wraps the row between the rotation's read and its write: the checksum moved, the version
    and value did not, so the rotation's new version (a fresh DEK) is still stored, not counted as someone else's."""
    h = make_harness()
    scope = Scope.project("p1")
    h.secrets.set(owner(), scope, "k", SecretValue("v1"))
    seen = stored(h, scope, "k")
    plan = h.rotation._plan(owner(), seen, [], parallel=False)
    h.add_master_key()
    assert h.rotation.rotate_master(owner()).rotated == 1
    assert stored(h, scope, "k").checksum != seen.checksum

    current = h.rotation._store_rotated(owner(), plan)

    assert current is not None and current.version == 2 and dek_of(h, current) != dek_of(h, seen)
    assert value_of(h, scope, "k") == "v1"
    assert [i.version for i in h.history.history(owner(), scope, "k").items] == [2, 1]
