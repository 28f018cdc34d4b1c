"""The Azure Key Vault provider through the real azure-keyvault-keys SDK, against a local HTTPS fake of Key Vault.

Each test gets its own fake on a fresh port: the SDK caches the vault's auth challenge per host and port, process-wide.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient

import tests.contract.test_master_key_provider_contract as contract
from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
from sprongus.adapters.kms_azure import AzureKeyVaultMasterKeyProvider
from sprongus.domain.envelope import Envelope, aad_for
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
from sprongus.entrypoints.kms import KmsOptions, ProviderUri, kms_provider
from sprongus.entrypoints.kms_clients import azure as azure_builder
from tests.harness import (
    owner,
    use_cases,
)
from tests.integration.kms.azure_fake import FakeCredential, FakeKeyVault, FakeKeyVaultServer

AAD = contract.AAD
VAULT_HOST = "sprongus-test.vault.azure.net"  # the vault's name; the fake answers at the endpoint override


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeKeyVaultServer]:
    fake = FakeKeyVaultServer(tmp_path)
    yield fake
    fake.close()


def provider(server: FakeKeyVaultServer, name: str = "master", version: str | None = None,
             client_kwargs: dict[str, Any] | None = None, **adapter_kwargs: Any) -> AzureKeyVaultMasterKeyProvider:
    """The provider as the builder makes it; or, given SDK client options (e.g. retry_total=0) or adapter options
    (refresh_seconds, clock), made by hand the same way."""
    resource = f"{VAULT_HOST}/keys/{name}" + (f"/{version}" if version else "")
    options = KmsOptions(ca_file=str(server.cert_path), timeout=5)
    if client_kwargs is None and not adapter_kwargs:
        return azure_builder.build(ProviderUri("azure", resource, server.url), options, FakeCredential())
    kwargs = {**azure_builder.client_options(server.url, VAULT_HOST, options), **(client_kwargs or {})}
    credential = FakeCredential()

    def crypto(key: KeyVaultKey | str) -> CryptographyClient:
        return CryptographyClient(key, credential, **kwargs)

    return AzureKeyVaultMasterKeyProvider(KeyClient(server.url, credential, **kwargs), crypto, name, version,
                                          **adapter_kwargs)


def test_wraps_locally_with_the_public_key_and_unwraps_remotely(server: FakeKeyVaultServer) -> None:
    vault = server.vault
    version = vault.add_version("master")
    keys, dek = provider(server), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    assert wrapped.master_key_id == keys.current_key_id() == f"azure:{vault.key_id('master', version)}"
    keys.wrap(os.urandom(32), AAD)
    assert vault.count("GET key") == 1 and vault.count("POST wrapkey") == 0  # the SDK wrapped locally
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek
    assert vault.count("POST unwrapkey") == 1  # the private key never leaves Key Vault


def test_without_keys_get_a_pinned_version_wraps_remotely(server: FakeKeyVaultServer) -> None:
    vault = server.vault
    version = vault.add_version("master")
    vault.forbid_get = True
    keys, dek = provider(server, version=version), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    assert wrapped.master_key_id == keys.current_key_id() == f"azure:{vault.key_id('master', version)}"
    assert vault.count("POST wrapkey") == 1
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek
    with pytest.raises(KeyAccessDenied, match="pin the key version"):  # unpinned needs keys/get
        provider(server).wrap(dek, AAD)


def test_a_symmetric_hsm_key_wraps_with_aes_kw_at_the_service(server: FakeKeyVaultServer) -> None:
    vault = server.vault
    vault.add_version("hsm-key", kty="oct-HSM")
    dek = os.urandom(32)
    wrapped = provider(server, "hsm-key").wrap(dek, AAD)
    assert vault.count("POST wrapkey") == 1 and len(wrapped.blob) == 40  # RFC 3394: 32 bytes + 8
    # A fresh process must unwrap it: the SDK's own local path would have wrapped with a random key.
    assert provider(server, "hsm-key").unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek


def test_the_aad_binds_the_value_through_the_data_cipher(server: FakeKeyVaultServer) -> None:
    server.vault.add_version("master")
    cipher = AesGcmDataCipher()
    envelope = Envelope({cipher.alg: cipher}, cipher.alg, provider(server))
    sealed = envelope.seal(SecretValue("hunter2"), AAD)
    assert envelope.open(sealed, AAD).reveal() == "hunter2"
    with pytest.raises(IntegrityError):  # the DEK unwraps anywhere, the value only in its own place
        envelope.open(sealed, aad_for(Scope.project("p2"), "db.password", 7))


def test_a_new_key_version_becomes_current_within_refresh_seconds(server: FakeKeyVaultServer) -> None:
    vault, now, dek = server.vault, [0.0], os.urandom(32)
    first = vault.add_version("master")
    keys = provider(server, refresh_seconds=60, clock=lambda: now[0])
    old = keys.wrap(dek, AAD)
    second = vault.add_version("master")  # rotated in Azure
    now[0] = 59.0
    assert keys.wrap(os.urandom(32), AAD).master_key_id == old.master_key_id == f"azure:{vault.key_id('master', first)}"
    now[0] = 60.0
    assert keys.current_key_id() == f"azure:{vault.key_id('master', second)}"
    assert keys.wrap(os.urandom(32), AAD).master_key_id == keys.current_key_id()
    assert keys.unwrap(old.blob, old.master_key_id, AAD) == dek  # the old version keeps unwrapping


def test_a_disabled_key_is_key_disabled(server: FakeKeyVaultServer) -> None:
    vault = server.vault
    vault.add_version("master")
    keys = provider(server)
    wrapped = keys.wrap(os.urandom(32), AAD)
    vault.disable("master")
    with pytest.raises(KeyDisabled):
        keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)  # remote unwrap refused by the service
    with pytest.raises(KeyDisabled):
        provider(server).wrap(os.urandom(32), AAD)  # refused before wrapping under a key that cannot unwrap
    with pytest.raises(KeyDisabled):
        provider(server).unwrap(wrapped.blob, wrapped.master_key_id, AAD)


def test_a_caller_without_permission_is_access_denied(server: FakeKeyVaultServer) -> None:
    vault = server.vault
    vault.add_version("master")
    wrapped = provider(server).wrap(os.urandom(32), AAD)
    vault.deny_all = True
    for action in (lambda keys: keys.wrap(os.urandom(32), AAD),
                   lambda keys: keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)):
        with pytest.raises(KeyAccessDenied, match="ForbiddenByRbac"):
            action(provider(server))


def test_an_unknown_version_is_a_provider_error_not_tampering(server: FakeKeyVaultServer) -> None:
    vault = server.vault
    vault.add_version("master")
    keys = provider(server)
    wrapped = keys.wrap(os.urandom(32), AAD)
    missing = f"azure:{vault.key_id('master', 'f' * 32)}"
    assert keys.can_unwrap(missing)
    with pytest.raises(KeyProviderError, match="no such key") as info:
        keys.unwrap(wrapped.blob, missing, AAD)
    assert not isinstance(info.value, IntegrityError)
    for foreign in (f"azure:{vault.key_id('other', 'f' * 32)}", f"azure:https://elsewhere.vault.azure.net/keys/"
                    f"master/{'f' * 32}", f"azure:http://{server.url[8:]}/keys/master/{'f' * 32}"):
        assert not keys.can_unwrap(foreign)


@pytest.mark.parametrize("status", [503, 429])
def test_an_outage_or_throttling_is_unavailable(server: FakeKeyVaultServer, status: int) -> None:
    server.vault.add_version("master")
    keys = provider(server, client_kwargs={"retry_total": 0})
    wrapped = keys.wrap(os.urandom(32), AAD)
    server.vault.outage = status
    with pytest.raises(KeyProviderUnavailable):
        keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)


def test_an_unreachable_vault_is_unavailable(server: FakeKeyVaultServer) -> None:
    server.vault.add_version("master")
    keys = provider(server, client_kwargs={"retry_total": 0})
    server.close()
    with pytest.raises(KeyProviderUnavailable):
        keys.wrap(os.urandom(32), AAD)


def test_an_untrusted_certificate_names_the_ca_setting(server: FakeKeyVaultServer) -> None:
    server.vault.add_version("master")
    # The system CAs do not know the fake's self-signed certificate.
    keys = provider(server, client_kwargs={"retry_total": 0, "connection_verify": True})
    with pytest.raises(KeyProviderError, match="SPRONGUS_KMS_CA_FILE"):
        keys.wrap(os.urandom(32), AAD)


def test_a_challenge_for_a_foreign_domain_is_refused(server: FakeKeyVaultServer) -> None:
    server.vault.add_version("master")
    # The fake's challenge names vault.azure.net, which 127.0.0.1 is not part of.
    keys = provider(server, client_kwargs={"retry_total": 0, "verify_challenge_resource": True})
    with pytest.raises(KeyProviderError, match="challenge names another domain than the vault's") as info:
        keys.wrap(os.urandom(32), AAD)
    assert not isinstance(info.value, IntegrityError | KeyDisabled)
    assert "Pass" not in str(info.value) and "aka.ms" not in str(info.value)  # not the SDK's advice and link
    assert server.vault.calls == []  # no token was sent


def test_the_builder_checks_the_uri_and_refuses_plain_http() -> None:
    for bad in ("azure://v.vault.azure.net/secrets/NAME", "azure://v.vault.azure.net/keys/",
                "azure://v.vault.azure.net/keys/a/b/c"):
        with pytest.raises(ConfigError, match="azure://VAULT"):
            kms_provider(bad, KmsOptions())
    with pytest.raises(ConfigError, match="https://"):
        kms_provider("azure://v.vault.azure.net/keys/k?endpoint=http://127.0.0.1:1", KmsOptions())
    # The challenge must name a Key Vault domain unless the operator pointed the client elsewhere.
    assert azure_builder.client_options("https://v.vault.azure.net", "v.vault.azure.net",
                                        KmsOptions())["verify_challenge_resource"] is True
    for url, host in (("https://127.0.0.1:8443", "v.vault.azure.net"), ("https://127.0.0.1:8443", "127.0.0.1:8443"),
                      ("https://localhost:8443", "localhost:8443")):
        assert azure_builder.client_options(url, host, KmsOptions())["verify_challenge_resource"] is False


def test_end_to_end_through_the_container(server: FakeKeyVaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    version = server.vault.add_version("master")
    monkeypatch.setattr(azure_builder, "default_credential", FakeCredential)
    container = build_container(Settings.from_mapping({
        "SPRONGUS_ENV": "test", "SPRONGUS_KMS_CA_FILE": str(server.cert_path),
        "SPRONGUS_KEY_PROVIDER": f"azure://127.0.0.1:{server.port}/keys/master?endpoint={server.url}"}))
    service, scope = use_cases(container), Scope.project("p1")
    service.secrets.set(owner(), scope, "db.password", SecretValue("hunter2"))
    view = service.secrets.get(owner(), scope, "db.password", reveal=True)
    assert view.master_key_id == f"azure:{server.vault.key_id('master', version)}"
    assert view.value is not None and view.value.reveal() == "hunter2"
    assert server.vault.count("POST unwrapkey") == 1


def new_version(vault: FakeKeyVault, keys: AzureKeyVaultMasterKeyProvider, name: str, kty: str) -> None:
    vault.add_version(name, kty)  # a key rotation in Azure...
    keys.refresh()  # ...which the provider picks up within refresh_seconds


class TestAzureRsaKeyContract(contract.TestMasterKeyProviderContract):
    @pytest.fixture
    def subject(self, server: FakeKeyVaultServer) -> Iterator[contract.Subject]:
        server.vault.add_version("master")
        keys = provider(server)
        yield contract.Subject("azure", keys, lambda: new_version(server.vault, keys, "master", "RSA"),
                               lambda: provider(server))

    @pytest.mark.parametrize("other", [b"", b"any other place"])
    def test_wrong_aad_fails_with_integrity_error(self, subject: contract.Subject, other: bytes) -> None:
        # Cannot hold for Azure: wrapKey takes no AAD. The data cipher binds the value instead
        # (test_the_aad_binds_the_value_through_the_data_cipher); here the wrapped DEK alone unwraps anywhere.
        dek = os.urandom(32)
        wrapped = subject.provider.wrap(dek, AAD)
        assert subject.provider.unwrap(wrapped.blob, wrapped.master_key_id, other) == dek


class TestAzureSymmetricKeyContract(TestAzureRsaKeyContract):
    @pytest.fixture
    def subject(self, server: FakeKeyVaultServer) -> Iterator[contract.Subject]:
        server.vault.add_version("hsm-key", "oct-HSM")
        keys = provider(server, "hsm-key")
        yield contract.Subject("azure", keys, lambda: new_version(server.vault, keys, "hsm-key", "oct-HSM"),
                               lambda: provider(server, "hsm-key"))

    def test_wrapping_twice_gives_different_blobs(self, subject: contract.Subject) -> None:
        # Cannot hold for AES-KW (RFC 3394), which is deterministic: the same DEK under the same key version gives
        # the same blob. Harmless here, since every encryption draws a fresh DEK; different DEKs still differ.
        dek = os.urandom(32)
        assert subject.provider.wrap(dek, AAD).blob == subject.provider.wrap(dek, AAD).blob
        assert subject.provider.wrap(os.urandom(32), AAD).blob != subject.provider.wrap(dek, AAD).blob


class TestAzurePinnedRemoteContract(TestAzureRsaKeyContract):
    """No keys/get permission and a pinned version: every wrap and unwrap is done by the service."""

    @pytest.fixture
    def subject(self, server: FakeKeyVaultServer) -> Iterator[contract.Subject]:
        versions = [server.vault.add_version("master")]
        server.vault.forbid_get = True

        def add() -> None:
            versions.append(server.vault.add_version("master"))

        yield contract.Subject("azure", provider(server, version=versions[0]), add,
                               lambda: provider(server, version=versions[-1]))

    def test_after_add_master_key_the_new_key_is_current_and_old_wraps_still_unwrap(
            self, subject: contract.Subject) -> None:
        # Cannot hold as written: a pinned URI names one version on purpose, so a new version becomes current
        # through a configuration change (the new URI), i.e. a new provider. Old wraps keep unwrapping there.
        dek = os.urandom(32)
        old = subject.provider.wrap(dek, AAD)
        subject.add_master_key()
        assert subject.provider.current_key_id() == old.master_key_id
        assert subject.reopen is not None
        repinned = subject.reopen()
        new = repinned.wrap(os.urandom(32), AAD)
        assert new.master_key_id == repinned.current_key_id() != old.master_key_id
        assert repinned.unwrap(old.blob, old.master_key_id, AAD) == dek
        with pytest.raises(IntegrityError):
            repinned.unwrap(new.blob, old.master_key_id, AAD)

    def test_a_new_process_over_the_same_storage_unwraps_and_sees_added_keys(self, subject: contract.Subject) -> None:
        # Same reason: the re-pinned provider is the "new process"; it must unwrap what the old pin wrapped.
        dek = os.urandom(32)
        old = subject.provider.wrap(dek, AAD)
        subject.add_master_key()
        assert subject.reopen is not None
        assert subject.reopen().unwrap(old.blob, old.master_key_id, AAD) == dek
