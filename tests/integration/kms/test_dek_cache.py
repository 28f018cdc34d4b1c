"""SPRONGUS_DEK_CACHE through the real container and the Cloud KMS SDK against the wire-protocol fake."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from sprongus.adapters.dek_cache import CachingMasterKeyProvider
from sprongus.domain.errors import KeyDisabled
from sprongus.entrypoints.container import Container
from tests.harness import CANARY, use_cases
from tests.integration.kms import vaults
from tests.integration.kms.gcp_fake import FakeCloudKms
from tests.integration.kms.test_gcp import KEY, gcp_settings

CACHE = "ttl=60s,uses=1000"


def reveal_rows(home: Path) -> int:
    with sqlite3.connect(home / "vault.db") as conn:
        count: int = conn.execute("SELECT count(*) FROM audit_event WHERE action = 'reveal'").fetchone()[0]
        return count


def decrypts_for_three_rounds(vault: Container, secrets: vaults.Secrets, kms: FakeCloudKms) -> int:
    before = kms.calls["Decrypt"]
    for _ in range(3):
        assert vaults.revealed(vault, secrets) == secrets
    return kms.calls["Decrypt"] - before


def test_the_cache_cuts_kms_decrypts_and_every_reveal_is_still_audited(
        gcp_kms: FakeCloudKms, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plain = vaults.open_vault(tmp_path / "plain", **gcp_settings(gcp_kms))
    secrets = vaults.fill(plain)
    assert decrypts_for_three_rounds(plain, secrets, gcp_kms) == 3 * len(secrets)
    vaults.close(plain)

    cached = vaults.open_vault(tmp_path / "cached", SPRONGUS_DEK_CACHE=CACHE, **gcp_settings(gcp_kms))
    assert isinstance(cached.master_keys(), CachingMasterKeyProvider)
    secrets = vaults.fill(cached)
    assert decrypts_for_three_rounds(cached, secrets, gcp_kms) == len(secrets)  # the first round only
    assert reveal_rows(tmp_path / "cached") == 3 * len(secrets)  # each reveal audited, hit or miss
    assert gcp_kms.calls["Encrypt"] >= 2 * len(secrets)  # writes never touch the cache: one wrap each, both vaults
    vaults.close(cached)
    assert CANARY not in caplog.text


def test_a_version_disabled_at_the_kms_stops_cached_reveals_at_the_next_refusal(gcp_kms: FakeCloudKms,
                                                                                 tmp_path: Path) -> None:
    vault = vaults.open_vault(tmp_path, SPRONGUS_DEK_CACHE=CACHE, **gcp_settings(gcp_kms))
    secrets = vaults.fill(vault, 4)
    (first, *rest) = list(secrets)
    assert vaults.revealed(vault, {first: secrets[first]}) == {first: secrets[first]}  # now cached
    gcp_kms.add_version(KEY)
    gcp_kms.disable(f"{KEY}/cryptoKeyVersions/1")
    assert vaults.revealed(vault, {first: secrets[first]}) == {first: secrets[first]}  # within ttl: from memory
    service = use_cases(vault)
    with pytest.raises(KeyDisabled):  # one the cache does not hold: the KMS refuses, and the cache forgets
        service.secrets.get(vaults.OWNER, rest[0][0], rest[0][1], reveal=True)
    with pytest.raises(KeyDisabled):
        service.secrets.get(vaults.OWNER, first[0], first[1], reveal=True)
    vaults.close(vault)


def test_rotate_master_with_the_cache_leaves_reveals_on_the_new_blobs(gcp_kms: FakeCloudKms, tmp_path: Path) -> None:
    vault = vaults.open_vault(tmp_path, SPRONGUS_DEK_CACHE=CACHE, **gcp_settings(gcp_kms))
    secrets = vaults.fill(vault)
    assert vaults.revealed(vault, secrets) == secrets
    new_version = gcp_kms.add_version(KEY)
    assert vault.rotation_ops().rotate_master(vaults.OWNER).rotated == len(secrets)
    gcp_kms.disable(f"{KEY}/cryptoKeyVersions/1")
    assert vaults.revealed(vault, secrets) == secrets  # re-wrapped blobs: new entries, opened by the new version
    assert vaults.master_key_counts(vault) == {f"gcp:{new_version}": len(secrets)}
    vaults.close(vault)
