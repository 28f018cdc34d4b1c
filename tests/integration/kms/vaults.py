"""A SQLite vault built by the real container from settings, for the KMS end-to-end and rotation tests."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import Container, build_container
from tests.harness import (
    CANARY,
    use_cases,
)

OWNER = Principal.local_owner("owner")
Secrets = dict[tuple[Scope, str], str]


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def env_keys() -> dict[str, str]:
    return {"SPRONGUS_MASTER_KEYS": f"k1:{b64key()}", "SPRONGUS_HMAC_KEYS": f"h1:{b64key()}"}


def open_vault(home: Path, **env: str) -> Container:
    return build_container(Settings.from_mapping(
        {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(home), "SPRONGUS_KMS_TIMEOUT": "5", "SPRONGUS_BATCH_SIZE": "2",
         **env}))


def fill(vault: Container, count: int = 5) -> Secrets:
    secrets: Secrets = {}
    for index in range(count):
        scope = Scope.project("p1") if index % 2 else Scope.system()
        secrets[(scope, f"svc{index}.token")] = f"{CANARY}-{index}"
    service = use_cases(vault)
    for (scope, key), value in secrets.items():
        service.secrets.set(OWNER, scope, key, SecretValue(value))
    return secrets


def revealed(vault: Container, secrets: Secrets) -> Secrets:
    service, out = use_cases(vault), {}
    for scope, key in secrets:
        value = service.secrets.get(OWNER, scope, key, reveal=True).value
        assert value is not None
        out[(scope, key)] = value.reveal()
    return out


def master_key_counts(vault: Container) -> dict[str, int]:
    return dict(vault.unit_of_work().count_by_master_key(OWNER))


def close(vault: Container) -> None:
    vault.database().db.close()
