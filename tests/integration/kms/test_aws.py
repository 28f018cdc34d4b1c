"""AWS KMS: the real boto3 client over HTTP against moto's server, plus botocore's Stubber for rare AWS errors."""

from __future__ import annotations

import base64
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider
from sprongus.domain.errors import (
    ConfigError,
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
)
from sprongus.entrypoints.kms import KmsOptions, kms_provider
from sprongus.ports.crypto import MasterKeyProvider
from tests.contract import test_master_key_provider_contract as contract
from tests.integration.kms import vaults
from tests.integration.kms.aws_fake import KeySwitch, moto_kms

AAD = contract.AAD
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_kms() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, and nothing from this machine's ~/.aws or an instance role."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def admin(moto_endpoint: str) -> Any:
    """What the operator does in the console: create, alias, disable keys."""
    return boto3.session.Session().client("kms", region_name=REGION, endpoint_url=moto_endpoint,
                                          aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def new_key(admin: Any) -> Callable[[], str]:
    return lambda: str(admin.create_key(Description="sprongus test")["KeyMetadata"]["Arn"])


def build(moto_endpoint: str, key: str) -> MasterKeyProvider:
    return kms_provider(f"aws://{key}", KmsOptions(endpoint=moto_endpoint, timeout=5.0))


def aws_settings(moto_endpoint: str, arn: str) -> dict[str, str]:
    return {"SPRONGUS_KEY_PROVIDER": f"aws://{arn}", "SPRONGUS_KMS_ENDPOINT": moto_endpoint}


class TestAwsKmsContract(contract.TestMasterKeyProviderContract):
    @pytest.fixture
    def subject(self, moto_endpoint: str, new_key: Callable[[], str]) -> contract.Subject:
        keys = KeySwitch(lambda arn: build(moto_endpoint, arn), [new_key()])
        return contract.Subject("aws", keys, lambda: keys.switch_to(new_key()), keys.reopen)


def test_the_aad_travels_as_encryption_context_and_a_different_one_is_refused(moto_endpoint: str,
                                                                              new_key: Callable[[], str],
                                                                              admin: Any) -> None:
    arn = new_key()
    keys, dek = build(moto_endpoint, arn), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    assert wrapped.master_key_id == f"aws:{arn}"
    # The documented format, so any AWS tool can decrypt a DEK given the row's AAD.
    context = {"sprongus:aad": base64.b64encode(AAD).decode()}
    assert admin.decrypt(CiphertextBlob=wrapped.blob, EncryptionContext=context)["Plaintext"] == dek
    with pytest.raises(IntegrityError) as info:
        keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD + b"x")
    assert info.value.__cause__ is None and dek.hex() not in str(info.value)


def test_a_tampered_ciphertext_is_an_integrity_error(moto_endpoint: str, new_key: Callable[[], str]) -> None:
    keys = build(moto_endpoint, new_key())
    wrapped = keys.wrap(os.urandom(32), AAD)
    tampered = wrapped.blob[:-5] + bytes([wrapped.blob[-5] ^ 0x10]) + wrapped.blob[-4:]
    with pytest.raises(IntegrityError):
        keys.unwrap(tampered, wrapped.master_key_id, AAD)


def test_a_disabled_or_doomed_key_is_key_disabled_until_enabled(moto_endpoint: str, new_key: Callable[[], str],
                                                                admin: Any) -> None:
    arn = new_key()
    keys, dek = build(moto_endpoint, arn), os.urandom(32)
    wrapped = keys.wrap(dek, AAD)
    admin.disable_key(KeyId=arn.split("/")[-1])
    with pytest.raises(KeyDisabled):
        keys.wrap(dek, AAD)
    with pytest.raises(KeyDisabled):
        keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
    admin.enable_key(KeyId=arn.split("/")[-1])
    assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek
    admin.schedule_key_deletion(KeyId=arn.split("/")[-1], PendingWindowInDays=7)
    with pytest.raises(KeyDisabled, match="KMSInvalidStateException"):
        keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)


def test_alias_uris_resolve_to_the_key_arn_once(moto_endpoint: str, new_key: Callable[[], str],
                                                admin: Any) -> None:
    arn, other = new_key(), new_key()
    alias = f"alias/sprongus-{uuid.uuid4().hex[:8]}"
    admin.create_alias(AliasName=alias, TargetKeyId=arn)
    for uri in (alias, f"{arn.split(':key/')[0]}:{alias}"):  # aws://alias/NAME and the alias's ARN
        keys = build(moto_endpoint, uri)
        assert keys.current_key_id() == f"aws:{arn}"
        dek = os.urandom(32)
        wrapped = keys.wrap(dek, AAD)
        assert wrapped.master_key_id == f"aws:{arn}" and keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == dek
    admin.update_alias(AliasName=alias, TargetKeyId=other)  # a running process keeps its key until restart
    assert keys.current_key_id() == f"aws:{arn}"
    assert build(moto_endpoint, alias).current_key_id() == f"aws:{other}"


def test_a_missing_alias_fails_at_build(moto_endpoint: str) -> None:
    with pytest.raises(KeyProviderError, match="does not exist"):
        build(moto_endpoint, "alias/sprongus-no-such-alias")


def test_an_alias_without_a_region_fails_at_build_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match=r"^SPRONGUS_KEY_PROVIDER: .*AWS_REGION"):
        build("http://127.0.0.1:9", "alias/sprongus")


@pytest.mark.parametrize("uri", [
    "aws://arn:aws:kms:us-east-1:123:key/abc", "aws://arn:aws:s3:::bucket", "aws://key/abc", "aws://alias/",
    "aws://arn:aws:kms:us-east-1:123456789012:key/abc/../x",
])
def test_a_malformed_aws_uri_fails_at_build_naming_the_setting(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"^SPRONGUS_KEY_PROVIDER: .*aws://arn:aws:kms"):
        kms_provider(uri, KmsOptions(endpoint="http://127.0.0.1:9"))


@pytest.fixture(scope="module")
def offline_client() -> Any:
    return boto3.session.Session().client("kms", region_name=REGION, aws_access_key_id="testing",
                                          aws_secret_access_key="testing")


@pytest.mark.parametrize(("code", "on_wrap", "on_unwrap"), [
    ("InvalidCiphertextException", KeyProviderError, IntegrityError),
    ("IncorrectKeyException", KeyProviderError, IntegrityError),
    ("AccessDeniedException", KeyAccessDenied, KeyAccessDenied),
    ("UnrecognizedClientException", KeyAccessDenied, KeyAccessDenied),
    ("DisabledException", KeyDisabled, KeyDisabled),
    ("KMSInvalidStateException", KeyDisabled, KeyDisabled),
    ("KeyUnavailableException", KeyProviderUnavailable, KeyProviderUnavailable),
    ("DependencyTimeoutException", KeyProviderUnavailable, KeyProviderUnavailable),
    ("KMSInternalException", KeyProviderUnavailable, KeyProviderUnavailable),
    ("NotFoundException", KeyProviderError, KeyProviderError),
])
def test_aws_error_codes_map_onto_the_error_tree(offline_client: Any, code: str, on_wrap: type[Exception],
                                                 on_unwrap: type[Exception]) -> None:
    # Errors moto cannot produce on demand, through the real client's own error parsing.
    keys = AwsKmsMasterKeyProvider(offline_client, f"arn:aws:kms:{REGION}:123456789012:key/{uuid.uuid4()}")
    with Stubber(offline_client) as stub:
        stub.add_client_error("encrypt", service_error_code=code, service_message="nope")
        stub.add_client_error("decrypt", service_error_code=code, service_message="nope")
        with pytest.raises(on_wrap) as wrap_info:
            keys.wrap(os.urandom(32), AAD)
        with pytest.raises(on_unwrap) as unwrap_info:
            keys.unwrap(b"blob", keys.current_key_id(), AAD)
    assert type(wrap_info.value) is on_wrap and type(unwrap_info.value) is on_unwrap


def test_an_unreachable_kms_is_unavailable_after_bounded_retries() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keys = kms_provider(f"aws://arn:aws:kms:{REGION}:123456789012:key/{uuid.uuid4()}",
                        KmsOptions(endpoint=f"http://127.0.0.1:{port}", timeout=1.0))
    started = time.monotonic()
    with pytest.raises(KeyProviderUnavailable, match="EndpointConnectionError"):
        keys.wrap(os.urandom(32), AAD)
    assert time.monotonic() - started < 5.0


def test_the_container_from_settings_stores_and_reveals_through_aws_kms(moto_endpoint: str,
                                                                        new_key: Callable[[], str],
                                                                        tmp_path: Path) -> None:
    arn = new_key()
    vault = vaults.open_vault(tmp_path, **aws_settings(moto_endpoint, arn))
    secrets = vaults.fill(vault)
    assert vaults.revealed(vault, secrets) == secrets
    assert vaults.master_key_counts(vault) == {f"aws:{arn}": len(secrets)}
    vaults.close(vault)


def test_rotation_from_the_env_key_to_aws_kms_leaves_every_secret_readable(moto_endpoint: str,
                                                                           new_key: Callable[[], str],
                                                                           tmp_path: Path) -> None:
    arn, env = new_key(), vaults.env_keys()
    before = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDER="env", **env)
    secrets = vaults.fill(before)
    vaults.close(before)

    switched = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED="env", **env,
                                 **aws_settings(moto_endpoint, arn))
    assert switched.rotation_ops().rotate_master(vaults.OWNER).rotated == len(secrets)
    assert vaults.master_key_counts(switched) == {f"aws:{arn}": len(secrets)}
    vaults.close(switched)

    after = vaults.open_vault(tmp_path, SPRONGUS_HMAC_KEYS=env["SPRONGUS_HMAC_KEYS"],
                              **aws_settings(moto_endpoint, arn))
    assert vaults.revealed(after, secrets) == secrets
    assert after.rotation_ops().verify(vaults.OWNER).ok
    vaults.close(after)


def test_rotation_from_one_aws_key_to_another_keeps_the_old_one_for_decryption(moto_endpoint: str,
                                                                               new_key: Callable[[], str],
                                                                               tmp_path: Path, admin: Any) -> None:
    old, new = new_key(), new_key()
    vault = vaults.open_vault(tmp_path, **aws_settings(moto_endpoint, old))
    secrets = vaults.fill(vault)
    vaults.close(vault)

    # The retired URI carries its endpoint, as docs/design.md#configuration says a retired provider keeps its own.
    switched = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED=f"aws://{old}?endpoint={moto_endpoint}",
                                 **aws_settings(moto_endpoint, new))
    assert vaults.revealed(switched, secrets) == secrets
    assert switched.rotation_ops().rotate_master(vaults.OWNER).rotated == len(secrets)
    assert vaults.master_key_counts(switched) == {f"aws:{new}": len(secrets)}
    admin.disable_key(KeyId=old.split("/")[-1])
    assert vaults.revealed(switched, secrets) == secrets
    vaults.close(switched)


def test_a_vault_pointed_at_another_kms_key_is_refused_at_start_not_on_the_first_reveal(
        moto_endpoint: str, new_key: Callable[[], str], tmp_path: Path) -> None:
    from sprongus.domain.errors import VaultKeyMismatch

    right, wrong = new_key(), new_key()
    vault = vaults.open_vault(tmp_path, **aws_settings(moto_endpoint, right))
    secrets = vaults.fill(vault, 2)
    before = vaults.master_key_counts(vault)
    vaults.close(vault)

    with pytest.raises(VaultKeyMismatch, match="does not match this vault") as info:
        vaults.open_vault(tmp_path, **aws_settings(moto_endpoint, wrong))
    assert f"aws:{wrong}" in str(info.value) and "nothing was written" in str(info.value)

    vault = vaults.open_vault(tmp_path, **aws_settings(moto_endpoint, right))
    assert vaults.master_key_counts(vault) == before
    assert vaults.revealed(vault, secrets) == secrets
    vaults.close(vault)
