"""rotate-master on AWS KMS with ReEncrypt: one call per DEK, the DEK never leaves KMS (moto's server, boto3)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from moto.core.exceptions import JsonRESTError
from moto.kms import models

from sprongus.adapters.keys_composite import CompositeMasterKeyProvider
from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider
from sprongus.domain.envelope import aad_for
from sprongus.domain.errors import IntegrityError, KeyProviderError
from sprongus.domain.scope import Scope
from sprongus.service.parallel import BoundedPool
from tests.integration.kms import vaults
from tests.integration.kms.test_aws import (  # noqa: F401
    admin,
    aws_credentials,
    aws_settings,
    build,
    moto_endpoint,
    new_key,
)

POOL = BoundedPool(4).map


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """KMS operations moto's backend ran (its server runs in this process)."""
    counted: Counter[str] = Counter()
    for op in ("encrypt", "decrypt", "re_encrypt"):
        original = getattr(models.KmsBackend, op)

        def spy(self: Any, *args: Any, _op: str = op, _original: Any = original, **kwargs: Any) -> Any:
            counted[_op] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(models.KmsBackend, op, spy)
    return counted


def places(n: int) -> list[bytes]:
    return [aad_for(Scope.project("p1"), f"k{i}", 1) for i in range(n)]


def test_rewrap_many_reencrypts_from_a_retired_key_and_binds_the_aad(moto_endpoint: str,  # noqa: F811
                                                                      new_key: Callable[[], str],  # noqa: F811
                                                                      calls: Counter[str]) -> None:
    old_arn, new_arn = new_key(), new_key()
    old, new = build(moto_endpoint, old_arn), build(moto_endpoint, new_arn)
    assert isinstance(new, AwsKmsMasterKeyProvider)
    deks, aads = [os.urandom(32) for _ in range(12)], places(12)
    wrapped = [old.wrap(dek, aad) for dek, aad in zip(deks, aads, strict=True)]
    calls.clear()
    keys = CompositeMasterKeyProvider(new, [old])
    moved = keys.rewrap_many([(w.blob, w.master_key_id, aad) for w, aad in zip(wrapped, aads, strict=True)], POOL)
    assert calls == {"re_encrypt": 12, "decrypt": 12, "encrypt": 12}  # moto's ReEncrypt is its decrypt + encrypt
    assert {m.master_key_id for m in moved} == {f"aws:{new_arn}"}
    assert [new.unwrap(m.blob, m.master_key_id, aad) for m, aad in zip(moved, aads, strict=True)] == deks
    with pytest.raises(IntegrityError):  # the encryption context still carries the AAD
        keys.rewrap_many([(wrapped[0].blob, wrapped[0].master_key_id, aads[1])], POOL)
    with pytest.raises(IntegrityError):  # a blob of another key, claimed to be the old key's
        keys.rewrap_many([(moved[0].blob, wrapped[0].master_key_id, aads[0])], POOL)


def test_a_policy_without_reencrypt_falls_back_to_decrypt_and_encrypt(moto_endpoint: str,  # noqa: F811
                                                                      new_key: Callable[[], str],  # noqa: F811
                                                                      calls: Counter[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    old_arn, new_arn = new_key(), new_key()
    old, new = build(moto_endpoint, old_arn), build(moto_endpoint, new_arn)
    deks, aads = [os.urandom(32) for _ in range(5)], places(5)
    wrapped = [old.wrap(dek, aad) for dek, aad in zip(deks, aads, strict=True)]

    def denied(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["refused"] += 1
        raise JsonRESTError("AccessDeniedException", "not allowed to kms:ReEncryptFrom")

    monkeypatch.setattr(models.KmsBackend, "re_encrypt", denied)
    keys = CompositeMasterKeyProvider(new, [old])
    moved = keys.rewrap_many([(w.blob, w.master_key_id, aad) for w, aad in zip(wrapped, aads, strict=True)],
                             BoundedPool(1).map)
    assert calls["refused"] == 1  # asked once, then decrypt + encrypt for the rest
    assert [new.unwrap(m.blob, m.master_key_id, aad) for m, aad in zip(moved, aads, strict=True)] == deks


def test_rotate_master_between_aws_keys_uses_reencrypt(moto_endpoint: str, new_key: Callable[[], str],  # noqa: F811
                                                       tmp_path: Path, admin: Any,  # noqa: F811
                                                       calls: Counter[str]) -> None:
    old, new = new_key(), new_key()
    vault = vaults.open_vault(tmp_path, **aws_settings(moto_endpoint, old))
    secrets = vaults.fill(vault)
    vaults.close(vault)

    switched = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED=f"aws://{old}?endpoint={moto_endpoint}",
                                 **aws_settings(moto_endpoint, new))
    calls.clear()
    assert switched.rotation_ops().rotate_master(vaults.OWNER).rotated == len(secrets)
    assert calls["re_encrypt"] == len(secrets)  # one ReEncrypt per DEK (+ the vault's key records)
    assert vaults.master_key_counts(switched) == {f"aws:{new}": len(secrets)}
    admin.disable_key(KeyId=old.split("/")[-1])  # nothing needs the old key any more
    assert vaults.revealed(switched, secrets) == secrets
    assert switched.rotation_ops().verify(vaults.OWNER).ok
    vaults.close(switched)


def test_a_key_not_configured_as_retired_is_not_moved_even_if_iam_would_allow_it(
        moto_endpoint: str, new_key: Callable[[], str], calls: Counter[str]) -> None:  # noqa: F811
    old, new = build(moto_endpoint, new_key()), build(moto_endpoint, new_key())
    wrapped = old.wrap(os.urandom(32), places(1)[0])
    calls.clear()
    with pytest.raises(KeyProviderError, match="no configured key provider"):
        CompositeMasterKeyProvider(new).rewrap_many([(wrapped.blob, wrapped.master_key_id, places(1)[0])], POOL)
    assert calls["re_encrypt"] == 0
