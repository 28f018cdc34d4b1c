"""Envelope encryption with the real AES-256-GCM cipher and local master keys (docs/design.md#crypto-format)."""

from __future__ import annotations

import dataclasses
import os
import traceback

import pytest

from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring
from sprongus.domain.envelope import Envelope, Sealed, aad_for, checksum
from sprongus.domain.errors import IntegrityError, KeyProviderError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import CANARY, is_new_key_id, make_harness, owner

SCOPE = Scope.user("alice")
AAD = aad_for(SCOPE, "notion.api_token", 3)
VAGUE = str(IntegrityError())


def envelope_for(versions: KeyVersions, provider: str = "memory") -> Envelope:
    cipher = AesGcmDataCipher()
    return Envelope({cipher.alg: cipher}, cipher.alg, LocalMasterKeyProvider(provider, versions.master),
                    StaticHmacKeyring(versions.hmac, "memory"))


@pytest.fixture
def versions() -> KeyVersions:
    return KeyVersions.fresh()


@pytest.fixture
def envelope(versions: KeyVersions) -> Envelope:
    return envelope_for(versions)


def flip(data: bytes, index: int = -1) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0x01
    return bytes(mutable)


def other_digest(tag: str) -> str:
    key_id, _, digest = tag.partition(":")
    return f"{key_id}:{'B' if digest[0] == 'A' else 'A'}{digest[1:]}"


def assert_fails_closed(envelope: Envelope, sealed: Sealed, aad: bytes) -> None:
    with pytest.raises(IntegrityError) as info:
        envelope.open(sealed, aad)
    rendered = "".join(traceback.format_exception(info.value))
    assert str(info.value) == VAGUE
    assert CANARY not in rendered


@pytest.mark.parametrize("text", ["", CANARY, "zaż\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144 \U0001f511",
                                  "x" * 65536])
def test_round_trip(envelope: Envelope, text: str) -> None:
    sealed = envelope.seal(SecretValue(text), AAD)
    assert text.encode() not in sealed.ciphertext or text == ""
    assert sealed.alg == "AES-256-GCM"
    assert is_new_key_id(sealed.master_key_id, "memory:v1")
    assert envelope.open(sealed, AAD).reveal() == text


def test_a_thousand_encryptions_of_one_value_share_no_nonce_dek_or_ciphertext(envelope: Envelope) -> None:
    sealed = [envelope.seal(SecretValue(CANARY), AAD) for _ in range(1000)]
    deks = {envelope.unwrap_dek(s, AAD) for s in sealed}
    assert len({s.nonce for s in sealed}) == 1000
    assert len({s.ciphertext for s in sealed}) == 1000
    assert len({s.dek_wrapped for s in sealed}) == 1000
    assert len(deks) == 1000
    assert {len(d) for d in deks} == {32}
    assert {len(s.nonce) for s in sealed} == {12}


TAMPERINGS = {
    "ciphertext first byte": lambda s: dataclasses.replace(s, ciphertext=flip(s.ciphertext, 0)),
    "ciphertext tag": lambda s: dataclasses.replace(s, ciphertext=flip(s.ciphertext, -1)),
    "ciphertext truncated": lambda s: dataclasses.replace(s, ciphertext=s.ciphertext[:-1]),
    "ciphertext extended": lambda s: dataclasses.replace(s, ciphertext=s.ciphertext + b"\0"),
    "nonce": lambda s: dataclasses.replace(s, nonce=flip(s.nonce)),
    "nonce short": lambda s: dataclasses.replace(s, nonce=s.nonce[:8]),
    "nonce empty": lambda s: dataclasses.replace(s, nonce=b""),
    "wrapped DEK nonce": lambda s: dataclasses.replace(s, dek_wrapped=flip(s.dek_wrapped, 0)),
    "wrapped DEK body": lambda s: dataclasses.replace(s, dek_wrapped=flip(s.dek_wrapped, 20)),
    "wrapped DEK empty": lambda s: dataclasses.replace(s, dek_wrapped=b""),
    "alg other cipher": lambda s: dataclasses.replace(s, alg="ChaCha20-Poly1305"),
    "alg case": lambda s: dataclasses.replace(s, alg="aes-256-gcm"),
    "hmac digest": lambda s: dataclasses.replace(s, hmac=other_digest(s.hmac)),
    "hmac unknown key id": lambda s: dataclasses.replace(s, hmac="h9:" + s.hmac.partition(":")[2]),
    "hmac without key id": lambda s: dataclasses.replace(s, hmac=s.hmac.partition(":")[2]),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_tampering_with_a_stored_field_fails_with_the_one_integrity_error(envelope: Envelope, tamper) -> None:
    sealed = envelope.seal(SecretValue(CANARY), AAD)
    assert sealed.hmac is not None
    assert_fails_closed(envelope, tamper(sealed), AAD)


@pytest.mark.parametrize("other_place", [
    aad_for(Scope.project("alice"), "notion.api_token", 3),  # owner type
    aad_for(Scope.user("alicf"), "notion.api_token", 3),  # owner id
    aad_for(SCOPE, "notion.api_tokem", 3),  # key name
    aad_for(SCOPE, "notion.api_token", 2),  # version (rollback)
    aad_for(SCOPE, "notion.api_token", 4),
], ids=["owner type", "owner id", "key name", "older version", "newer version"])
def test_opening_under_any_other_aad_part_fails(envelope: Envelope, other_place: bytes) -> None:
    assert other_place != AAD
    assert_fails_closed(envelope, envelope.seal(SecretValue(CANARY), AAD), other_place)


def test_a_system_row_does_not_open_as_a_user_row(envelope: Envelope) -> None:
    sealed = envelope.seal(SecretValue(CANARY), aad_for(Scope.system(), "k", 1))
    assert_fails_closed(envelope, sealed, aad_for(Scope.user("system"), "k", 1))


def test_a_rows_crypto_fields_copied_onto_another_key_do_not_reveal() -> None:
    h = make_harness()
    h.secrets.set(owner(), SCOPE, "a", SecretValue(CANARY))
    h.secrets.set(owner(), SCOPE, "b", SecretValue("other"))
    rows = h.uow.repository.rows[SCOPE]
    crypto = {f: getattr(rows["a"], f) for f in ("ciphertext", "dek_wrapped", "nonce", "alg", "master_key_id",
                                                  "hmac", "checksum")}
    rows["b"] = dataclasses.replace(rows["b"], **crypto)
    with pytest.raises(IntegrityError):
        h.secrets.get(owner(), SCOPE, "b", reveal=True)
    assert h.secrets.get(owner(), SCOPE, "a", reveal=True).value.reveal() == CANARY


def test_rolling_a_row_back_to_an_older_ciphertext_does_not_reveal() -> None:
    h = make_harness()
    h.secrets.set(owner(), SCOPE, "a", SecretValue("old-" + CANARY))
    old = h.uow.repository.rows[SCOPE]["a"]
    h.secrets.set(owner(), SCOPE, "a", SecretValue("new"))
    current = h.uow.repository.rows[SCOPE]["a"]
    assert current.version == old.version + 1
    h.uow.repository.rows[SCOPE]["a"] = dataclasses.replace(old, version=current.version)
    with pytest.raises(IntegrityError):
        h.secrets.get(owner(), SCOPE, "a", reveal=True)


def test_a_wrong_master_key_with_the_same_key_id_fails(versions: KeyVersions) -> None:
    sealed = envelope_for(versions).seal(SecretValue(CANARY), AAD)
    impostor = KeyVersions([(versions.master[0][0], os.urandom(32))], versions.hmac)
    assert_fails_closed(envelope_for(impostor), sealed, AAD)


def test_old_master_key_versions_still_decrypt_after_a_new_current_key(versions: KeyVersions) -> None:
    keys = LocalMasterKeyProvider("memory", versions.master)
    cipher = AesGcmDataCipher()
    envelope = Envelope({cipher.alg: cipher}, cipher.alg, keys, StaticHmacKeyring(versions.hmac, "memory"))
    old = envelope.seal(SecretValue("sealed under v1"), AAD)
    rotated = versions.with_new_master()
    keys.reload(rotated.master)

    new = envelope.seal(SecretValue("sealed under v2"), AAD)
    assert is_new_key_id(old.master_key_id, "memory:v1") and is_new_key_id(new.master_key_id, "memory:v2")
    assert envelope.open(old, AAD).reveal() == "sealed under v1"
    assert envelope.open(new, AAD).reveal() == "sealed under v2"
    rewrapped = envelope.rewrap(old, AAD)
    assert rewrapped.master_key_id == new.master_key_id
    assert (rewrapped.ciphertext, rewrapped.nonce) == (old.ciphertext, old.nonce)
    assert envelope_for(KeyVersions(rotated.master[:1], versions.hmac)).open(rewrapped, AAD).reveal() \
        == "sealed under v1"


def test_dropping_the_old_master_key_makes_its_rows_unreadable(versions: KeyVersions) -> None:
    old = envelope_for(versions).seal(SecretValue(CANARY), AAD)
    only_new = KeyVersions(versions.with_new_master().master[:1], versions.hmac)
    with pytest.raises(KeyProviderError, match="memory:v1") as info:
        envelope_for(only_new).open(old, AAD)
    assert CANARY not in str(info.value)


CHECKSUM_CHANGES = {
    "ciphertext": lambda s: dataclasses.replace(s, ciphertext=flip(s.ciphertext)),
    "dek_wrapped": lambda s: dataclasses.replace(s, dek_wrapped=flip(s.dek_wrapped)),
    "nonce": lambda s: dataclasses.replace(s, nonce=flip(s.nonce)),
    "alg": lambda s: dataclasses.replace(s, alg="AES-256-GCM-SIV"),
    "master_key_id": lambda s: dataclasses.replace(s, master_key_id="memory:v2"),
    "hmac": lambda s: dataclasses.replace(s, hmac=s.hmac + "x"),
    "hmac removed": lambda s: dataclasses.replace(s, hmac=None),
}


@pytest.mark.parametrize("change", CHECKSUM_CHANGES.values(), ids=CHECKSUM_CHANGES.keys())
def test_checksum_changes_when_any_stored_crypto_field_changes(envelope: Envelope, change) -> None:
    sealed = envelope.seal(SecretValue(CANARY), AAD)
    assert checksum(sealed, AAD) == checksum(dataclasses.replace(sealed), AAD)
    assert checksum(change(sealed), AAD) != checksum(sealed, AAD)


def test_checksum_changes_with_the_place_and_needs_no_key(envelope: Envelope) -> None:
    sealed = envelope.seal(SecretValue(CANARY), AAD)
    value = checksum(sealed, AAD)
    assert value.startswith("sha256:") and len(value) == len("sha256:") + 64
    assert checksum(sealed, aad_for(SCOPE, "notion.api_token", 4)) != value
