"""The vault owner's set and reveal on a container, for the tests that drive real vaults directly."""

from __future__ import annotations

from typing import Any

from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import CANARY, use_cases

OWNER = Principal.local_owner("owner")
SCOPE = Scope.project("p1")


def write(vault: Any, key: str = "db.password", value: str = CANARY) -> None:
    use_cases(vault).secrets.set(OWNER, SCOPE, key, SecretValue(value))


def reveal(vault: Any, key: str = "db.password") -> str:
    value = use_cases(vault).secrets.get(OWNER, SCOPE, key, reveal=True).value
    assert value is not None
    return value.reveal()
