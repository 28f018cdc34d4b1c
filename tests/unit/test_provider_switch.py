"""Switching the current key provider keeps old secrets readable through the retired one, then rotation moves them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from sprongus.domain.errors import KeyProviderError, VaultKeyMismatch
from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from tests.harness import (
    CANARY,
    is_new_key_id,
    use_cases,
)

OWNER = Principal.local_owner("owner")
SCOPE = Scope.project("p1")


def _settings(home: Path, **extra: str) -> Settings:
    return Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home), **extra})


def _env_keys() -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    return {"SPRONGUS_KEY_PROVIDER": "env", "SPRONGUS_MASTER_KEYS": f"k1:{key}", "SPRONGUS_HMAC_KEYS": f"h1:{key}"}


def test_file_to_env_switch_reads_old_rows_and_rotation_moves_them(tmp_path: Path) -> None:
    old = build_container(_settings(tmp_path, SPRONGUS_KEY_PROVIDER="file"))
    old.secret_ops().set(OWNER, SCOPE, "notion.api_token", SecretValue(CANARY))
    old.database().db.close()

    new = build_container(_settings(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED="file", **_env_keys()))
    service = use_cases(new)
    revealed = service.secrets.get(OWNER, SCOPE, "notion.api_token", reveal=True).value
    assert revealed is not None and revealed.reveal() == CANARY  # retired provider's DEK wrap *and* HMAC key work

    assert service.rotation.rotate_master(OWNER).rotated == 1
    assert new.unit_of_work().count_by_master_key(OWNER) == {"env:k1": 1}
    assert service.rotation.verify(OWNER).ok


def test_without_the_retired_provider_old_rows_are_refused_not_garbled(tmp_path: Path) -> None:
    old = build_container(_settings(tmp_path, SPRONGUS_KEY_PROVIDER="file"))
    old.secret_ops().set(OWNER, SCOPE, "k", SecretValue(CANARY))
    old.database().db.close()

    with pytest.raises(VaultKeyMismatch, match="does not match this vault") as info:
        build_container(_settings(tmp_path, **_env_keys()))  # refused at start, not on the first reveal
    assert CANARY not in str(info.value)


def test_a_retired_file_provider_never_creates_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyProviderError, match="does not exist"):
        build_container(_settings(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED="file", **_env_keys()))
    assert not (tmp_path / "master.key").exists()


def test_a_new_local_master_key_also_rotates_the_hmac_key_and_old_rows_still_verify(tmp_path: Path) -> None:
    container = build_container(_settings(tmp_path, SPRONGUS_KEY_PROVIDER="file"))
    service = use_cases(container)
    service.secrets.set(OWNER, SCOPE, "old", SecretValue(CANARY))
    container.key_material().add_master_key()  # keys re-read: the next write checks the new key first
    service.secrets.set(OWNER, SCOPE, "new", SecretValue(CANARY))
    with container.unit_of_work().transaction(OWNER) as repo:
        tags = {key: (repo.get(SCOPE, key).hmac or "").rsplit(":", 1)[0] for key in ("old", "new")}  # type: ignore[union-attr]
    assert is_new_key_id(tags["old"], "file:h1") and is_new_key_id(tags["new"], "file:h2")
    assert service.rotation.verify(OWNER).ok


@pytest.mark.parametrize("hmac", [True, False], ids=["env-signs", "nothing-signs"])
def test_after_rotate_master_the_retired_provider_can_go(tmp_path: Path, hmac: bool) -> None:
    old = build_container(_settings(tmp_path, SPRONGUS_KEY_PROVIDER="file"))
    old.secret_ops().set(OWNER, SCOPE, "k", SecretValue(CANARY))
    old.database().db.close()
    env = _env_keys()
    if not hmac:
        del env["SPRONGUS_HMAC_KEYS"]

    switching = build_container(_settings(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED="file", **env))
    assert switching.rotation_ops().rotate_master(OWNER).rotated == 1  # re-wraps and re-signs the value
    switching.database().db.close()

    after = build_container(_settings(tmp_path, **env))  # the file provider is no longer configured
    revealed = after.secret_ops().get(OWNER, SCOPE, "k", reveal=True).value
    assert revealed is not None and revealed.reveal() == CANARY
    assert after.rotation_ops().verify(OWNER).ok
