"""The Vault / OpenBao transit provider against a real OpenBao dev server, through hvac."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.contract.test_master_key_provider_contract as contract
from sprongus.adapters.kms_vault import VaultTransitMasterKeyProvider
from sprongus.domain.envelope import aad_for
from sprongus.domain.errors import (
    ConfigError,
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
)
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from sprongus.entrypoints.kms import KmsOptions, kms_provider
from tests.harness import (
    owner,
    use_cases,
)
from tests.integration.kms.vault_server import ROOT_TOKEN, BaoServer, free_port_pair, start_bao

AAD = contract.AAD


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    server = start_bao(tmp_path_factory.mktemp("bao"))
    yield server
    server.stop()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path))  # no stray ~/.vault-token
    return ROOT_TOKEN


@pytest.fixture
def key_name(bao: BaoServer) -> str:
    name = f"sprongus-{uuid.uuid4().hex[:12]}"
    bao.client().secrets.transit.create_key(name, derived=True)
    return name


def uri(bao: BaoServer, name: str, mount: str = "transit") -> str:
    return f"vault://{bao.url.removeprefix('http://')}/{mount}/keys/{name}?endpoint={bao.url}"


def provider(bao: BaoServer, name: str) -> VaultTransitMasterKeyProvider:
    built = kms_provider(uri(bao, name), KmsOptions(timeout=5))
    assert isinstance(built, VaultTransitMasterKeyProvider)
    return built


def token_with_policy(bao: BaoServer, name: str, rules: str) -> str:
    policy = f"sprongus-test-{uuid.uuid4().hex[:8]}"
    client = bao.client()
    client.sys.create_or_update_policy(policy, rules.replace("NAME", name))
    return str(client.auth.token.create(policies=[policy], ttl="10m")["auth"]["client_token"])


def test_wraps_under_the_current_version_and_unwraps(bao: BaoServer, token: str, key_name: str) -> None:
    keys, dek = provider(bao, key_name), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    assert wrapped.master_key_id == keys.current_key_id() == f"vault:transit/{key_name}:v1"
    assert wrapped.blob.startswith(b"vault:v1:") and dek not in base64.b64decode(wrapped.blob[9:])
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek


def test_the_aad_is_bound_through_the_derivation_context(bao: BaoServer, token: str, key_name: str) -> None:
    keys = provider(bao, key_name)
    wrapped = keys.wrap(os.urandom(32), AAD)
    moved = aad_for(Scope.project("p1"), "db.password", 8)  # the same DEK replayed on the next version
    with pytest.raises(IntegrityError):
        keys.unwrap(wrapped.blob, wrapped.master_key_id, moved)


def test_a_tampered_ciphertext_is_an_integrity_error(bao: BaoServer, token: str, key_name: str) -> None:
    keys = provider(bao, key_name)
    wrapped = keys.wrap(os.urandom(32), AAD)
    body = bytearray(base64.b64decode(wrapped.blob[9:]))
    body[len(body) // 2] ^= 1
    with pytest.raises(IntegrityError):
        keys.unwrap(b"vault:v1:" + base64.b64encode(bytes(body)), wrapped.master_key_id, AAD)


def test_rotation_wraps_with_v2_and_old_wraps_still_unwrap(bao: BaoServer, token: str, key_name: str) -> None:
    keys, dek = provider(bao, key_name), os.urandom(32)
    old = keys.wrap(dek, AAD)
    bao.client().secrets.transit.rotate_key(key_name)
    assert keys.current_key_id() == f"vault:transit/{key_name}:v2"
    assert keys.wrap(os.urandom(32), AAD).master_key_id == f"vault:transit/{key_name}:v2"
    assert keys.unwrap(old.blob, old.master_key_id, AAD) == dek
    with pytest.raises(IntegrityError):  # the row's key id and the blob's version must agree
        keys.unwrap(old.blob, f"vault:transit/{key_name}:v2", AAD)


def test_rewrap_moves_a_dek_to_the_new_version_without_seeing_it(bao: BaoServer, monkeypatch: pytest.MonkeyPatch,
                                                                 token: str, key_name: str) -> None:
    dek = os.urandom(32)
    old = provider(bao, key_name).wrap(dek, AAD)
    bao.client().secrets.transit.rotate_key(key_name)
    # A token that may rewrap but never decrypt: the DEK cannot leave Vault on this path.
    monkeypatch.setenv("VAULT_TOKEN", token_with_policy(bao, key_name, """
        path "transit/rewrap/NAME" { capabilities = ["update"] }
        path "transit/keys/NAME" { capabilities = ["read"] }"""))
    rewrapper = provider(bao, key_name)
    moved = rewrapper.rewrap(old.blob, old.master_key_id, AAD)
    assert moved.master_key_id == f"vault:transit/{key_name}:v2" and moved.blob.startswith(b"vault:v2:")
    with pytest.raises(KeyAccessDenied):
        rewrapper.unwrap(moved.blob, moved.master_key_id, AAD)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    assert provider(bao, key_name).unwrap(moved.blob, moved.master_key_id, AAD) == dek
    with pytest.raises(IntegrityError):
        provider(bao, key_name).rewrap(old.blob, old.master_key_id, b"another place")


def test_a_token_without_permission_is_access_denied(bao: BaoServer, monkeypatch: pytest.MonkeyPatch,
                                                     token: str, key_name: str) -> None:
    wrapped = provider(bao, key_name).wrap(os.urandom(32), AAD)
    monkeypatch.setenv("VAULT_TOKEN", token_with_policy(bao, key_name, """
        path "transit/keys/NAME" { capabilities = ["read"] }"""))
    denied = provider(bao, key_name)
    with pytest.raises(KeyAccessDenied, match="VAULT_TOKEN"):
        denied.wrap(os.urandom(32), AAD)
    with pytest.raises(KeyAccessDenied):
        denied.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    monkeypatch.setenv("VAULT_TOKEN", "not-a-token")
    with pytest.raises(KeyAccessDenied):
        provider(bao, key_name).current_key_id()


def test_a_version_below_min_decryption_version_is_disabled(bao: BaoServer, token: str, key_name: str) -> None:
    keys = provider(bao, key_name)
    old = keys.wrap(os.urandom(32), AAD)
    transit = bao.client().secrets.transit
    transit.rotate_key(key_name)
    transit.update_key_configuration(key_name, min_decryption_version=2)
    with pytest.raises(KeyDisabled):
        keys.unwrap(old.blob, old.master_key_id, AAD)


def test_a_non_aead_key_is_refused_since_it_could_not_bind_the_aad(bao: BaoServer, token: str) -> None:
    name = f"ed-{uuid.uuid4().hex[:8]}"
    bao.client().secrets.transit.create_key(name, key_type="ed25519")
    with pytest.raises(KeyProviderError, match="derived"):
        provider(bao, name).wrap(os.urandom(32), AAD)


def test_a_missing_key_or_mount_is_a_provider_error(bao: BaoServer, token: str) -> None:
    for keys in (provider(bao, "no-such-key"), kms_provider(uri(bao, "k", mount="nowhere"), KmsOptions())):
        with pytest.raises(KeyProviderError) as info:
            keys.wrap(os.urandom(32), AAD)
        assert not isinstance(info.value, IntegrityError | KeyProviderUnavailable | KeyAccessDenied)


def test_an_unreachable_server_is_unavailable(token: str) -> None:
    port = free_port_pair()  # nothing listens there
    keys = kms_provider(f"vault://127.0.0.1:{port}/transit/keys/k?endpoint=http://127.0.0.1:{port}",
                        KmsOptions(timeout=2))
    with pytest.raises(KeyProviderUnavailable):
        keys.wrap(os.urandom(32), AAD)


def test_without_an_endpoint_the_server_is_reached_over_https(bao: BaoServer, token: str, key_name: str) -> None:
    keys = kms_provider(f"vault://{bao.url.removeprefix('http://')}/transit/keys/{key_name}", KmsOptions(timeout=5))
    with pytest.raises(KeyProviderError, match="TLS"):  # the dev server speaks plain HTTP
        keys.current_key_id()


def test_the_builder_rejects_bad_uris_and_a_missing_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VAULT_TOKEN", "t")
    for bad in ("vault://127.0.0.1:8200/transit/NAME", "vault://127.0.0.1:8200/keys/NAME",
                "vault://127.0.0.1:8200/transit/keys/a/b"):
        with pytest.raises(ConfigError, match="transit"):
            kms_provider(bad, KmsOptions())
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(ConfigError, match="VAULT_TOKEN"):
        kms_provider("vault://127.0.0.1:8200/transit/keys/k", KmsOptions())
    with pytest.raises(ConfigError, match="http://"):
        kms_provider("vault://127.0.0.1:8200/transit/keys/k?endpoint=http://127.0.0.1:8200",
                     KmsOptions(allow_http=False))


def test_end_to_end_through_the_container(bao: BaoServer, token: str, key_name: str) -> None:
    container = build_container(Settings.from_mapping({"SPRONGUS_ENV": "test",
                                                       "SPRONGUS_KEY_PROVIDER": uri(bao, key_name)}))
    service, scope = use_cases(container), Scope.project("p1")
    service.secrets.set(owner(), scope, "db.password", SecretValue("hunter2"))
    view = service.secrets.get(owner(), scope, "db.password", reveal=True)
    assert view.master_key_id == f"vault:transit/{key_name}:v1"
    assert view.value is not None and view.value.reveal() == "hunter2"


def test_moving_from_env_keys_to_vault_with_rotate_master(bao: BaoServer, token: str, key_name: str,
                                                          tmp_path: Path) -> None:
    from tests.integration.stack import new_key, sqlite_url

    base = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path), "SPRONGUS_DATABASE_URL": sqlite_url(tmp_path),
            "SPRONGUS_MASTER_KEYS": new_key("k1"), "SPRONGUS_HMAC_KEYS": new_key("h1"), "SPRONGUS_BATCH_SIZE": "7"}
    values = {(Scope.project(f"p{i % 3}"), f"app.key{i}"): f"value-{i}" for i in range(20)}
    before = use_cases(build_container(Settings.from_mapping({**base, "SPRONGUS_KEY_PROVIDER": "env"})))
    for (scope, key), value in values.items():
        before.secrets.set(owner(), scope, key, SecretValue(value))

    switch = {**base, "SPRONGUS_KEY_PROVIDER": uri(bao, key_name), "SPRONGUS_KEY_PROVIDERS_RETIRED": "env"}
    during = use_cases(build_container(Settings.from_mapping(switch)))
    assert during.rotation.rotate_master(owner()).rotated == len(values)
    assert during.rotation.rotate_master(owner()).rotated == 0

    after = {k: v for k, v in base.items() if k != "SPRONGUS_MASTER_KEYS"}  # the env key is gone for good
    service = build_container(Settings.from_mapping({**after, "SPRONGUS_KEY_PROVIDER": uri(bao, key_name)}))
    for (scope, key), value in values.items():
        view = service.secret_ops().get(owner(), scope, key, reveal=True)
        assert view.master_key_id == f"vault:transit/{key_name}:v1" and view.version == 1
        assert view.value is not None and view.value.reveal() == value


class TestVaultTransitContract(contract.TestMasterKeyProviderContract):
    @pytest.fixture
    def subject(self, bao: BaoServer, token: str, key_name: str) -> Iterator[contract.Subject]:
        def rotate() -> None:
            bao.client().secrets.transit.rotate_key(key_name)

        yield contract.Subject("vault", provider(bao, key_name), rotate, lambda: provider(bao, key_name))
