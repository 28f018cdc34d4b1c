"""Transit in bulk (batch_input) and standard (non-derived) transit keys, against a real OpenBao dev server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.contract.test_master_key_provider_contract as contract
from sprongus.adapters import kms_vault
from sprongus.adapters.kms_vault import VaultTransitMasterKeyProvider, derivation_context
from sprongus.domain.envelope import aad_for
from sprongus.domain.errors import IntegrityError, KeyAccessDenied, KeyDisabled, KeyProviderError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from sprongus.ports.crypto import serial_map
from sprongus.service.parallel import BoundedPool
from tests.harness import owner, use_cases
from tests.integration.kms.test_vault import bao, provider, token, token_with_policy, uri  # noqa: F401
from tests.integration.kms.vault_server import ROOT_TOKEN, BaoServer

AAD = contract.AAD
POOL = BoundedPool(4).map


def aads(n: int) -> list[bytes]:
    return [aad_for(Scope.project("p1"), f"k{i}", 1) for i in range(n)]


@pytest.fixture(params=["derived", "standard"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_key(bao: BaoServer, kind: str) -> str:  # noqa: F811
    name = f"{kind}-{uuid.uuid4().hex[:10]}"
    if kind == "derived":
        bao.client().secrets.transit.create_key(name, derived=True)
    else:  # `bao write -f transit/keys/NAME`: aes256-gcm96, not derived
        bao.client().secrets.transit.create_key(name)
    return name


class Spy:
    """Counts the batch requests a provider sends, by operation, and their sizes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests: list[tuple[str, int]] = []
        batch = VaultTransitMasterKeyProvider._batch

        def counted(keys: VaultTransitMasterKeyProvider, operation: str, entries: list[dict[str, str]]) -> Any:
            self.requests.append((operation, len(entries)))
            return batch(keys, operation, entries)

        monkeypatch.setattr(VaultTransitMasterKeyProvider, "_batch", counted)

    def ops(self) -> set[str]:
        return {op for op, _ in self.requests}


def test_a_standard_key_binds_the_aad_as_associated_data(bao: BaoServer, token: str) -> None:  # noqa: F811
    name = f"plain-{uuid.uuid4().hex[:8]}"
    bao.client().secrets.transit.create_key(name)
    keys, dek = provider(bao, name), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    assert wrapped.master_key_id == f"vault:transit/{name}:v1"
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek
    with pytest.raises(IntegrityError):  # the same DEK replayed on another version
        keys.unwrap(wrapped.blob, wrapped.master_key_id, aad_for(Scope.project("p1"), "db.password", 8))
    # transit itself refuses it without the associated data: the AAD is bound by the key, not by sprongus
    transit = bao.client().secrets.transit
    with pytest.raises(Exception, match="authentication failed"):
        transit.decrypt_data(name, ciphertext=wrapped.blob.decode())
    plain = transit.decrypt_data(name, ciphertext=wrapped.blob.decode(), associated_data=derivation_context(AAD))
    assert plain["data"]["plaintext"] == kms_vault._b64(dek)


def test_ciphertexts_made_the_old_way_still_open(bao: BaoServer, token: str, any_key: str, kind: str) -> None:  # noqa: F811
    """A derived key's ciphertexts written before batching (encrypt with `context`) open as they did."""
    dek, binding = os.urandom(32), ("context" if kind == "derived" else "associated_data")
    made = bao.client().secrets.transit.encrypt_data(any_key, plaintext=kms_vault._b64(dek),
                                                     **{binding: derivation_context(AAD)})
    blob = made["data"]["ciphertext"].encode()
    keys = provider(bao, any_key)
    assert keys.unwrap(blob, f"vault:transit/{any_key}:v1", AAD) == dek
    assert keys.unwrap_many([(blob, f"vault:transit/{any_key}:v1", AAD)] * 3, POOL) == [dek] * 3


def test_the_key_type_is_read_once_per_process(bao: BaoServer, token: str, any_key: str,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    keys, reads = provider(bao, any_key), []
    read = VaultTransitMasterKeyProvider._read_key
    monkeypatch.setattr(VaultTransitMasterKeyProvider, "_read_key", lambda self: reads.append(1) or read(self))
    wrapped = [keys.wrap(os.urandom(32), AAD) for _ in range(3)]
    for w in wrapped:
        keys.unwrap(w.blob, w.master_key_id, AAD)
    keys.rewrap_many([(w.blob, w.master_key_id, AAD) for w in wrapped], POOL)
    assert len(reads) == 1


def test_rewrap_many_moves_every_dek_in_batches(bao: BaoServer, token: str, any_key: str, kind: str,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    n = kms_vault.BATCH * 2 + 7  # three requests' worth
    keys, deks, places = provider(bao, any_key), [os.urandom(32) for _ in range(n)], aads(n)
    old = keys.wrap_many(list(zip(deks, places, strict=True)), POOL)
    assert {w.master_key_id for w in old} == {f"vault:transit/{any_key}:v1"}
    bao.client().secrets.transit.rotate_key(any_key)
    spy = Spy(monkeypatch)
    moved = keys.rewrap_many([(w.blob, w.master_key_id, aad) for w, aad in zip(old, places, strict=True)], POOL)
    assert {w.master_key_id for w in moved} == {f"vault:transit/{any_key}:v2"}
    assert all(w.blob.startswith(b"vault:v2:") for w in moved)
    if kind == "derived":  # transit's rewrap: the DEKs never leave it
        assert spy.requests == [("rewrap", kms_vault.BATCH)] * 2 + [("rewrap", 7)]
    else:  # rewrap takes no associated_data: decrypt + encrypt per batch
        assert spy.ops() == {"decrypt", "encrypt"} and len(spy.requests) == 6
    assert keys.unwrap_many([(w.blob, w.master_key_id, aad) for w, aad in zip(moved, places, strict=True)],
                            POOL) == deks


def test_one_bad_item_fails_the_whole_batch(bao: BaoServer, token: str, any_key: str) -> None:  # noqa: F811
    keys, places = provider(bao, any_key), aads(5)
    old = keys.wrap_many([(os.urandom(32), aad) for aad in places], serial_map)
    items = [(w.blob, w.master_key_id, aad) for w, aad in zip(old, places, strict=True)]
    items[3] = (items[3][0], items[3][1], b"another place")
    bao.client().secrets.transit.rotate_key(any_key)  # rewrap answers 200 with the item's error: still refused
    for call in (keys.rewrap_many, keys.unwrap_many):
        with pytest.raises(IntegrityError):
            call(items, POOL)


def test_a_version_below_min_decryption_version_is_disabled_in_a_batch(bao: BaoServer, token: str,  # noqa: F811
                                                                       any_key: str) -> None:
    keys = provider(bao, any_key)
    old = keys.wrap(os.urandom(32), AAD)
    transit = bao.client().secrets.transit
    transit.rotate_key(any_key)
    transit.update_key_configuration(any_key, min_decryption_version=2)
    for call in (keys.rewrap_many, keys.unwrap_many):
        with pytest.raises(KeyDisabled):
            call([(old.blob, old.master_key_id, AAD)] * 2, POOL)


def test_a_derived_key_rewraps_with_a_token_that_may_not_decrypt(bao: BaoServer, token: str,  # noqa: F811
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"derived-{uuid.uuid4().hex[:8]}"
    bao.client().secrets.transit.create_key(name, derived=True)
    old = provider(bao, name).wrap_many([(os.urandom(32), aad) for aad in aads(3)], serial_map)
    bao.client().secrets.transit.rotate_key(name)
    monkeypatch.setenv("VAULT_TOKEN", token_with_policy(bao, name, """
        path "transit/rewrap/NAME" { capabilities = ["update"] }
        path "transit/keys/NAME" { capabilities = ["read"] }"""))
    rewrapper = provider(bao, name)
    moved = rewrapper.rewrap_many([(w.blob, w.master_key_id, aad) for w, aad in zip(old, aads(3), strict=True)],
                                  POOL)
    assert {w.master_key_id for w in moved} == {f"vault:transit/{name}:v2"}
    with pytest.raises(KeyAccessDenied):
        rewrapper.unwrap(moved[0].blob, moved[0].master_key_id, aads(3)[0])


def test_a_key_that_cannot_bind_associated_data_is_refused(bao: BaoServer, token: str) -> None:  # noqa: F811
    name = f"rsa-{uuid.uuid4().hex[:8]}"
    bao.client().secrets.transit.create_key(name, key_type="rsa-2048")
    with pytest.raises(KeyProviderError, match="AEAD"):
        provider(bao, name).wrap(os.urandom(32), AAD)


def test_a_server_that_ignores_associated_data_is_refused(bao: BaoServer, token: str,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    bao.client().secrets.transit.create_key(name)
    batch = VaultTransitMasterKeyProvider._batch

    def ignoring(keys: VaultTransitMasterKeyProvider, operation: str, entries: list[dict[str, str]]) -> Any:
        return batch(keys, operation, [{k: v for k, v in e.items() if k != "associated_data"} for e in entries])

    monkeypatch.setattr(VaultTransitMasterKeyProvider, "_batch", ignoring)  # what an old server would do
    with pytest.raises(KeyProviderError, match="ignores associated_data"):
        provider(bao, name).wrap(os.urandom(32), AAD)


def test_a_server_whose_encrypt_answer_is_broken_fails_the_probe(bao: BaoServer, token: str,  # noqa: F811
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken answer (no ciphertext) also fails the wrong-AAD decrypt; the probe must not take that for a server
    that binds associated_data: the right AAD has to give the probe text back first."""
    name = f"plain-{uuid.uuid4().hex[:8]}"
    bao.client().secrets.transit.create_key(name)
    batch = VaultTransitMasterKeyProvider._batch

    def broken(keys: VaultTransitMasterKeyProvider, operation: str, entries: list[dict[str, str]]) -> Any:
        answer = batch(keys, operation, entries)
        return [{k: v for k, v in item.items() if k != "ciphertext"} for item in answer] if operation == "encrypt" \
            else answer

    monkeypatch.setattr(VaultTransitMasterKeyProvider, "_batch", broken)
    with pytest.raises(KeyProviderError, match="probe text back"):
        provider(bao, name).wrap(os.urandom(32), AAD)


def test_rotate_master_through_the_container_uses_batches(bao: BaoServer, token: str, any_key: str,  # noqa: F811
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.stack import new_key, sqlite_url

    base = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path), "SPRONGUS_DATABASE_URL": sqlite_url(tmp_path),
            "SPRONGUS_HMAC_KEYS": new_key("h1"), "SPRONGUS_BATCH_SIZE": "60",
            "SPRONGUS_KEY_PROVIDER": uri(bao, any_key)}
    values = {(Scope.project(f"p{i % 3}"), f"app.key{i}"): f"value-{i}" for i in range(130)}
    before = use_cases(build_container(Settings.from_mapping(base)))
    for (scope, key), value in values.items():
        before.secrets.set(owner(), scope, key, SecretValue(value))
    before.secrets.set(owner(), Scope.project("p0"), "app.key0", SecretValue("value-0"))  # a kept version too
    bao.client().secrets.transit.rotate_key(any_key)

    spy = Spy(monkeypatch)
    during = use_cases(build_container(Settings.from_mapping(base)))
    report = during.rotation.rotate_master(owner())
    assert report.rotated == len(values) + 1 and during.rotation.rotate_master(owner()).rotated == 0
    rows = [n for op, n in spy.requests if op in ("rewrap", "decrypt")]
    # pages of 60 (60, 60, 10, then 1 kept version) in batches of 50: 6 requests, not one per row; single items are
    # the vault's key checks (and a standard key's one associated_data probe)
    assert sum(rows) >= len(values) + 1 and len([n for n in rows if n > 1]) <= 5 and len(rows) <= 10

    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    service = build_container(Settings.from_mapping(base))
    for (scope, key), value in values.items():
        view = service.secret_ops().get(owner(), scope, key, reveal=True)
        assert view.master_key_id == f"vault:transit/{any_key}:v2"
        assert view.value is not None and view.value.reveal() == value
    assert service.rotation_ops().verify(owner()).failures == []


class TestStandardTransitKeyContract(contract.TestMasterKeyProviderContract):
    @pytest.fixture
    def subject(self, bao: BaoServer, token: str) -> Iterator[contract.Subject]:  # noqa: F811
        name = f"plain-{uuid.uuid4().hex[:8]}"
        bao.client().secrets.transit.create_key(name)

        def rotate() -> None:
            bao.client().secrets.transit.rotate_key(name)

        yield contract.Subject("vault", provider(bao, name), rotate, lambda: provider(bao, name))
