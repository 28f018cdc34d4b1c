"""Google Cloud KMS: the real SDK client over gRPC against an in-process fake that speaks the wire protocol."""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from sprongus.adapters.kms_gcp import GcpKmsMasterKeyProvider
from sprongus.domain.errors import (
    ConfigError,
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
)
from sprongus.entrypoints.kms import KmsOptions, kms_provider
from sprongus.ports.crypto import BULK_WORK
from tests.contract import test_master_key_provider_contract as contract
from tests.integration.kms import vaults
from tests.integration.kms.conftest import GCP_KEY
from tests.integration.kms.gcp_fake import FakeCloudKms

T = TypeVar("T")

KEY = GCP_KEY  # the gcp_kms fixture (conftest.py) creates it
AAD = contract.AAD


def provider(kms: FakeCloudKms, timeout: float = 5.0) -> GcpKmsMasterKeyProvider:
    # retry=None: a failure must surface at once, not after the SDK's default 60 s of retries.
    return GcpKmsMasterKeyProvider(kms.client(), KEY, timeout, retry=None)


def gcp_settings(kms: FakeCloudKms) -> dict[str, str]:
    return {"SPRONGUS_KEY_PROVIDER": f"gcp://{KEY}", "SPRONGUS_KMS_ENDPOINT": f"http://127.0.0.1:{kms.port}"}


class TestGcpKmsContract(contract.TestMasterKeyProviderContract):
    @pytest.fixture
    def subject(self, gcp_kms: FakeCloudKms) -> contract.Subject:
        # A new master key is a new primary version of the same CryptoKey; a new process is a new client.
        return contract.Subject("gcp", provider(gcp_kms), lambda: gcp_kms.add_version(KEY),
                                lambda: provider(gcp_kms))

    def test_after_add_master_key_the_new_key_is_current_and_old_wraps_still_unwrap(
            self, subject: contract.Subject) -> None:
        # Overridden for one assertion. Cloud KMS Decrypt takes the CryptoKey, not a version, and reads the version
        # from the ciphertext; there is no way to ask it to decrypt "with version 1 only". So a version in a key id
        # only routes a blob to this provider, and a blob labelled with a sibling version still opens to its own
        # DEK -- never to another DEK or garbage. Everything else the contract asks holds as written.
        dek_old, dek_new = os.urandom(32), os.urandom(32)
        old = subject.provider.wrap(dek_old, AAD)
        subject.add_master_key()
        new_id = subject.provider.current_key_id()
        assert new_id != old.master_key_id and new_id.startswith("gcp:")
        new = subject.provider.wrap(dek_new, AAD)
        assert new.master_key_id == new_id
        assert subject.provider.can_unwrap(old.master_key_id) and subject.provider.can_unwrap(new_id)
        assert subject.provider.unwrap(old.blob, old.master_key_id, AAD) == dek_old
        assert subject.provider.unwrap(new.blob, new_id, AAD) == dek_new
        assert subject.provider.unwrap(new.blob, old.master_key_id, AAD) == dek_new


def test_key_ids_name_the_version_that_encrypted(gcp_kms: FakeCloudKms) -> None:
    keys = provider(gcp_kms)
    assert keys.wrap(os.urandom(32), AAD).master_key_id == f"gcp:{KEY}/cryptoKeyVersions/1"
    assert not keys.can_unwrap(f"gcp:{KEY}2/cryptoKeyVersions/1")  # a key whose name merely starts the same
    assert not keys.can_unwrap(f"gcp:{KEY}/cryptoKeyVersions/1/x")


@pytest.mark.parametrize("damage", ["ciphertext_crc32c", "ciphertext", "verified_plaintext_crc32c",
                                    "verified_additional_authenticated_data_crc32c"])
def test_a_damaged_encrypt_response_is_refused_as_unavailable(gcp_kms: FakeCloudKms, damage: str) -> None:
    keys, dek = provider(gcp_kms), os.urandom(32)
    gcp_kms.corrupt = damage
    with pytest.raises(KeyProviderUnavailable, match="CRC32C") as info:
        keys.wrap(dek, AAD)
    assert dek.hex() not in str(info.value)
    gcp_kms.corrupt = None  # transient: the next call works
    wrapped = keys.wrap(dek, AAD)
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek


@pytest.mark.parametrize("damage", ["plaintext_crc32c", "plaintext"])
def test_a_damaged_decrypt_response_is_refused_not_returned(gcp_kms: FakeCloudKms, damage: str) -> None:
    keys, dek = provider(gcp_kms), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    gcp_kms.corrupt = damage
    with pytest.raises(KeyProviderUnavailable, match="CRC32C"):
        keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    gcp_kms.corrupt = None
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek


def test_a_disabled_version_is_key_disabled_and_other_versions_still_work(gcp_kms: FakeCloudKms) -> None:
    keys = provider(gcp_kms)
    dek_old, dek_new = os.urandom(32), os.urandom(32)
    old = keys.wrap(dek_old, AAD)
    gcp_kms.add_version(KEY)
    new = keys.wrap(dek_new, AAD)
    gcp_kms.disable(old.master_key_id.removeprefix("gcp:"))
    with pytest.raises(KeyDisabled):
        keys.unwrap(old.blob, old.master_key_id, AAD)
    assert keys.unwrap(new.blob, new.master_key_id, AAD) == dek_new
    gcp_kms.disable(new.master_key_id.removeprefix("gcp:"))
    with pytest.raises(KeyDisabled):
        keys.wrap(os.urandom(32), AAD)


@pytest.mark.parametrize(("status", "on_wrap", "on_unwrap"), [
    (grpc.StatusCode.PERMISSION_DENIED, KeyAccessDenied, KeyAccessDenied),
    (grpc.StatusCode.UNAUTHENTICATED, KeyAccessDenied, KeyAccessDenied),
    (grpc.StatusCode.FAILED_PRECONDITION, KeyDisabled, KeyDisabled),
    (grpc.StatusCode.UNAVAILABLE, KeyProviderUnavailable, KeyProviderUnavailable),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, KeyProviderUnavailable, KeyProviderUnavailable),
    (grpc.StatusCode.NOT_FOUND, KeyProviderError, KeyProviderError),
    (grpc.StatusCode.INVALID_ARGUMENT, KeyProviderError, IntegrityError),  # a bad ciphertext only on decrypt
])
def test_kms_statuses_map_onto_the_error_tree(gcp_kms: FakeCloudKms, status: grpc.StatusCode,
                                              on_wrap: type[Exception], on_unwrap: type[Exception]) -> None:
    keys = provider(gcp_kms)
    wrapped = keys.wrap(os.urandom(32), AAD)
    gcp_kms.fail_with = status
    with pytest.raises(on_wrap) as wrap_info:
        keys.wrap(os.urandom(32), AAD)
    with pytest.raises(on_unwrap) as unwrap_info:
        keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    assert type(wrap_info.value) is on_wrap and type(unwrap_info.value) is on_unwrap


def test_a_slow_kms_is_unavailable_after_the_timeout(gcp_kms: FakeCloudKms) -> None:
    keys = provider(gcp_kms, timeout=0.2)
    gcp_kms.delay = 0.6
    started = time.monotonic()
    with pytest.raises(KeyProviderUnavailable):
        keys.wrap(os.urandom(32), AAD)
    assert time.monotonic() - started < 0.5


def test_an_unavailable_kms_is_retried_only_within_the_configured_timeout(gcp_kms: FakeCloudKms) -> None:
    keys = kms_provider(f"gcp://{KEY}", KmsOptions(endpoint=f"http://127.0.0.1:{gcp_kms.port}", timeout=1.0))
    gcp_kms.fail_with = grpc.StatusCode.UNAVAILABLE
    started = time.monotonic()
    with pytest.raises(KeyProviderUnavailable):
        keys.wrap(os.urandom(32), AAD)
    assert time.monotonic() - started < 2.0
    assert gcp_kms.calls["Encrypt"] >= 2  # retried, briefly


def built(kms: FakeCloudKms, timeout: float) -> GcpKmsMasterKeyProvider:
    """Built like production: the bounded retry of kms_clients/gcp.py."""
    keys = kms_provider(f"gcp://{KEY}", KmsOptions(endpoint=f"http://127.0.0.1:{kms.port}", timeout=timeout))
    assert isinstance(keys, GcpKmsMasterKeyProvider)
    return keys


def in_bulk_work(call: Callable[[], T]) -> T:
    """As rotate-master makes its KMS calls (service/vault_rewrap.py marks them)."""
    def marked() -> T:
        BULK_WORK.set(True)
        return call()
    return contextvars.copy_context().run(marked)


@pytest.mark.parametrize("refusals", [1, 2])
def test_a_quota_refusal_in_bulk_work_is_retried_with_backoff_and_then_succeeds(gcp_kms: FakeCloudKms,
                                                                              refusals: int) -> None:
    # Cloud KMS answers a request over the project's quota with RESOURCE_EXHAUSTED (429); Google's advice is to retry
    # it with truncated exponential backoff. The default concurrency (24) can meet that in a rotation.
    keys, dek = built(gcp_kms, timeout=5.0), os.urandom(32)
    gcp_kms.fail_with, gcp_kms.fail_times = grpc.StatusCode.RESOURCE_EXHAUSTED, refusals
    wrapped = in_bulk_work(lambda: keys.wrap(dek, AAD))
    assert gcp_kms.calls["Encrypt"] == refusals + 1
    gcp_kms.fail_with, gcp_kms.fail_times = grpc.StatusCode.RESOURCE_EXHAUSTED, refusals
    assert in_bulk_work(lambda: keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)) == dek
    assert gcp_kms.calls["Decrypt"] == refusals + 1


def test_a_quota_refusal_that_outlasts_the_timeout_is_unavailable_not_a_hang(gcp_kms: FakeCloudKms) -> None:
    keys, dek = built(gcp_kms, timeout=1.0), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    gcp_kms.fail_with = grpc.StatusCode.RESOURCE_EXHAUSTED  # every call, until the test ends
    for call, method in ((lambda: keys.wrap(dek, AAD), "Encrypt"),
                         (lambda: keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD), "Decrypt")):
        before, started = gcp_kms.calls[method], time.monotonic()
        with pytest.raises(KeyProviderUnavailable) as info:  # 503 / exit 8: retry later; never IntegrityError
            in_bulk_work(call)
        assert type(info.value) is KeyProviderUnavailable and time.monotonic() - started < 2.0
        assert "ResourceExhausted" in str(info.value)  # the operator learns it is the quota, not only "retried"
        assert gcp_kms.calls[method] - before >= 2  # retried within the timeout, then given up


def test_a_quota_refusal_outside_bulk_work_is_answered_at_once(gcp_kms: FakeCloudKms) -> None:
    """An API request (a reveal, a write) must not hold its worker thread for the whole timeout: one try, then 503."""
    keys, dek = built(gcp_kms, timeout=5.0), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    gcp_kms.fail_with = grpc.StatusCode.RESOURCE_EXHAUSTED
    for call, method in ((lambda: keys.wrap(dek, AAD), "Encrypt"),
                         (lambda: keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD), "Decrypt")):
        before, started = gcp_kms.calls[method], time.monotonic()
        with pytest.raises(KeyProviderUnavailable, match="ResourceExhausted"):
            call()
        assert time.monotonic() - started < 1.0 and gcp_kms.calls[method] - before == 1
    gcp_kms.fail_with = None
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek  # and the next request goes through


def test_an_unreachable_kms_is_unavailable_within_the_configured_timeout(gcp_kms: FakeCloudKms) -> None:
    # Built like production (bounded retries on UNAVAILABLE), against a server that has gone away.
    keys = kms_provider(f"gcp://{KEY}", KmsOptions(endpoint=f"http://127.0.0.1:{gcp_kms.port}", timeout=1.0))
    gcp_kms.stop()
    started = time.monotonic()
    with pytest.raises(KeyProviderUnavailable):
        keys.wrap(os.urandom(32), AAD)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("uri", [
    "gcp://projects/p/locations/global/keyRings/r",
    f"gcp://{KEY}/cryptoKeyVersions/1",
    "gcp://keyRings/r/cryptoKeys/k",
    "gcp://projects//locations/global/keyRings/r/cryptoKeys/k",
])
def test_a_malformed_gcp_uri_fails_at_build_naming_the_setting(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"^SPRONGUS_KEY_PROVIDER: .*cryptoKeys/K"):
        kms_provider(uri, KmsOptions(endpoint="http://127.0.0.1:9"))


def test_an_unreadable_ca_file_fails_at_build_naming_the_setting(tmp_path: Path) -> None:
    options = KmsOptions(endpoint="https://kms.internal.example:8443", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"^SPRONGUS_KMS_CA_FILE: "):
        kms_provider(f"gcp://{KEY}", options)


def test_without_adc_the_builder_says_how_to_provide_credentials(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login here
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # and no metadata server to ask
    with pytest.raises(ConfigError, match="ADC"):
        kms_provider(f"gcp://{KEY}", KmsOptions())


@pytest.mark.parametrize("content", [None, "not json", '{"type": "service_account", "private_key": "%s"}'])
def test_a_credentials_file_that_is_not_one_is_named_without_repeating_it(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path, content: str | None) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS was set and the message said to set it; google-auth's own text quotes the
    file's contents (a private key, in a service account key with a field missing)."""
    canary = "canary-gcp-private-key-4e1b"
    path = tmp_path / "sa.json"
    if content is not None:
        path.write_text(content.replace("%s", canary))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    with pytest.raises(ConfigError, match=r"^GOOGLE_APPLICATION_CREDENTIALS: the file it names is missing, "
                                          r"unreadable or not a Google credentials file") as info:
        kms_provider(f"gcp://{KEY}", KmsOptions())
    assert canary not in str(info.value) and info.value.__suppress_context__


def test_the_container_from_settings_stores_and_reveals_through_cloud_kms(gcp_kms: FakeCloudKms,
                                                                          tmp_path: Path) -> None:
    vault = vaults.open_vault(tmp_path, **gcp_settings(gcp_kms))
    secrets = vaults.fill(vault)
    assert vaults.revealed(vault, secrets) == secrets
    assert vaults.master_key_counts(vault) == {f"gcp:{KEY}/cryptoKeyVersions/1": len(secrets)}
    assert gcp_kms.calls["Encrypt"] >= len(secrets) and gcp_kms.calls["Decrypt"] >= len(secrets)
    vaults.close(vault)


def test_rotation_from_the_env_key_to_cloud_kms_moves_every_secret(gcp_kms: FakeCloudKms, tmp_path: Path) -> None:
    env = vaults.env_keys()
    before = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDER="env", **env)
    secrets = vaults.fill(before)
    vaults.close(before)

    switched = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED="env", **env, **gcp_settings(gcp_kms))
    assert vaults.revealed(switched, secrets) == secrets  # old rows through the retired env key
    assert switched.rotation_ops().rotate_master(vaults.OWNER).rotated == len(secrets)
    assert vaults.master_key_counts(switched) == {f"gcp:{KEY}/cryptoKeyVersions/1": len(secrets)}
    vaults.close(switched)

    # The env master key is gone; only the value-HMAC keys stay configured.
    after = vaults.open_vault(tmp_path, SPRONGUS_HMAC_KEYS=env["SPRONGUS_HMAC_KEYS"], **gcp_settings(gcp_kms))
    assert vaults.revealed(after, secrets) == secrets
    assert after.rotation_ops().verify(vaults.OWNER).ok
    vaults.close(after)


def test_rotation_to_a_new_key_version_moves_every_secret_off_the_old_one(gcp_kms: FakeCloudKms,
                                                                          tmp_path: Path) -> None:
    vault = vaults.open_vault(tmp_path, **gcp_settings(gcp_kms))
    secrets = vaults.fill(vault)
    old = gcp_kms.keys[KEY].primary
    new_version = gcp_kms.add_version(KEY)
    assert vault.master_keys().current_key_id() == f"gcp:{new_version}"
    assert vault.rotation_ops().rotate_master(vaults.OWNER).rotated == len(secrets)
    assert vaults.master_key_counts(vault) == {f"gcp:{new_version}": len(secrets)}

    gcp_kms.disable(f"{KEY}/cryptoKeyVersions/{old}")  # what an operator does once nothing uses it
    assert vaults.revealed(vault, secrets) == secrets
    assert vault.rotation_ops().verify(vaults.OWNER).ok
    vaults.close(vault)
