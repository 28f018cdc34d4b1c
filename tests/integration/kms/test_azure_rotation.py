"""Master-key rotation onto and within Azure Key Vault: a SQLite vault built by the real container from settings,
the real azure-keyvault-keys SDK, and the local HTTPS fake of Key Vault.

Each test gets its own fake on a fresh port: the SDK caches the vault's auth challenge per host and port, process-wide.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sprongus.domain.errors import KeyDisabled
from sprongus.entrypoints.kms_clients import azure as azure_builder
from tests.integration.kms import vaults
from tests.integration.kms.azure_fake import FakeCredential, FakeKeyVaultServer

VAULT_HOST = "sprongus-test.vault.azure.net"  # the vault's name; the fake answers at the endpoint override


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKeyVaultServer]:
    fake = FakeKeyVaultServer(tmp_path)
    # The builder's one seam: DefaultAzureCredential would look for a real Azure login.
    monkeypatch.setattr(azure_builder, "default_credential", FakeCredential)
    yield fake
    fake.close()


def azure_settings(server: FakeKeyVaultServer, name: str = "master") -> dict[str, str]:
    return {"SPRONGUS_KEY_PROVIDER": f"azure://{VAULT_HOST}/keys/{name}?endpoint={server.url}",
            "SPRONGUS_KMS_CA_FILE": str(server.cert_path)}


def key_id(server: FakeKeyVaultServer, version: str, name: str = "master") -> str:
    return f"azure:{server.vault.key_id(name, version)}"


def test_rotation_from_the_env_key_to_azure_moves_every_secret(server: FakeKeyVaultServer, tmp_path: Path) -> None:
    version = server.vault.add_version("master")
    env = vaults.env_keys()
    before = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDER="env", **env)
    secrets = vaults.fill(before, 7)  # SPRONGUS_BATCH_SIZE=2: four batches, the last one short
    assert vaults.master_key_counts(before) == {"env:k1": 7}
    vaults.close(before)

    switched = vaults.open_vault(tmp_path, SPRONGUS_KEY_PROVIDERS_RETIRED="env", **env, **azure_settings(server))
    assert switched.master_keys().current_key_id() == key_id(server, version)
    assert vaults.revealed(switched, secrets) == secrets  # old rows through the retired env key
    assert server.vault.count("POST unwrapkey") == 0  # ... which Key Vault has no part in
    report = switched.rotation_ops().rotate_master(vaults.OWNER)
    assert (report.rotated, report.skipped) == (7, 0)
    assert vaults.master_key_counts(switched) == {key_id(server, version): 7}
    assert switched.rotation_ops().rotate_master(vaults.OWNER).rotated == 0  # nothing left to do
    vaults.close(switched)

    # The env master key is gone; only the value-HMAC keys stay configured. Every DEK now unwraps in Key Vault.
    after = vaults.open_vault(tmp_path, SPRONGUS_HMAC_KEYS=env["SPRONGUS_HMAC_KEYS"], **azure_settings(server))
    unwraps = server.vault.count("POST unwrapkey")
    assert vaults.revealed(after, secrets) == secrets
    assert server.vault.count("POST unwrapkey") - unwraps == len(secrets)
    assert after.rotation_ops().verify(vaults.OWNER).ok
    vaults.close(after)


def test_rotation_to_a_new_azure_key_version_moves_every_dek_off_the_old_one(server: FakeKeyVaultServer,
                                                                             tmp_path: Path) -> None:
    fake = server.vault
    first = fake.add_version("master")
    vault = vaults.open_vault(tmp_path, **azure_settings(server))
    secrets = vaults.fill(vault, 5)
    assert vaults.master_key_counts(vault) == {key_id(server, first): 5}
    vaults.close(vault)

    second = fake.add_version("master")  # the key rotated in Azure: the new version is current
    vault = vaults.open_vault(tmp_path, **azure_settings(server))  # a new process looks the key up afresh
    assert vault.master_keys().current_key_id() == key_id(server, second)
    # Until the rotation, the old version keeps unwrapping the DEKs it wrapped.
    assert vaults.revealed(vault, secrets) == secrets
    assert vaults.master_key_counts(vault) == {key_id(server, first): 5}

    report = vault.rotation_ops().rotate_master(vaults.OWNER)
    assert (report.rotated, report.skipped) == (5, 0)
    assert vaults.master_key_counts(vault) == {key_id(server, second): 5}
    vaults.close(vault)

    # Nothing references the old version any more, so the operator may disable it and every secret still opens.
    fake.disable("master", first)
    vault = vaults.open_vault(tmp_path, **azure_settings(server))
    assert vaults.revealed(vault, secrets) == secrets
    assert vault.rotation_ops().verify(vaults.OWNER).ok
    vaults.close(vault)


def test_disabling_a_version_that_still_wraps_secrets_stops_them_until_re_enabled(
        server: FakeKeyVaultServer, tmp_path: Path) -> None:
    """The runbook's warning: `keys status` shows secrets on a version, so it must stay enabled until rotated."""
    fake = server.vault
    first = fake.add_version("master")
    vault = vaults.open_vault(tmp_path, **azure_settings(server))
    secrets = vaults.fill(vault, 3)
    vaults.close(vault)

    fake.add_version("master")
    fake.disable("master", first)  # too early: three secrets still sit on it
    vault = vaults.open_vault(tmp_path, **azure_settings(server))
    with pytest.raises(KeyDisabled):
        vaults.revealed(vault, secrets)
    with pytest.raises(KeyDisabled):
        vault.rotation_ops().rotate_master(vaults.OWNER)
    assert vaults.master_key_counts(vault) == {key_id(server, first): 3}  # nothing half-moved
    vaults.close(vault)

    for version in fake.keys["master"]:  # re-enabled in the portal
        version.enabled = version.enabled or version.version == first
    vault = vaults.open_vault(tmp_path, **azure_settings(server))
    assert vault.rotation_ops().rotate_master(vaults.OWNER).rotated == 3
    assert vaults.revealed(vault, secrets) == secrets
    vaults.close(vault)


def test_every_call_goes_to_the_endpoint_override_while_key_ids_name_the_vault(server: FakeKeyVaultServer,
                                                                              tmp_path: Path) -> None:
    """A private endpoint: Key Vault names its keys by the vault's public host (`kid`), but the client must talk
    to the configured address only, for unwrap as for everything else."""
    fake = server.vault
    fake.url = f"https://{VAULT_HOST}"  # what Key Vault puts in every kid; no such host is reachable from here
    version = fake.add_version("master")
    vault = vaults.open_vault(tmp_path, **azure_settings(server))
    secrets = vaults.fill(vault, 3)
    assert vaults.master_key_counts(vault) == {f"azure:https://{VAULT_HOST}/keys/master/{version}": 3}
    vaults.close(vault)

    fake.add_version("master")
    vault = vaults.open_vault(tmp_path, **azure_settings(server))
    assert vaults.revealed(vault, secrets) == secrets
    assert vault.rotation_ops().rotate_master(vaults.OWNER).rotated == 3
    assert vaults.revealed(vault, secrets) == secrets
    # All of them through the endpoint: 3 reveals, 3 re-wraps, 3 reveals, plus the vault's key check at start and
    # its HMAC key (read once, re-wrapped once). A call to VAULT_HOST would have failed the steps above.
    assert fake.count("POST unwrapkey") >= 9
    vaults.close(vault)
