"""A provider's class, imported when the provider first builds it rather than when the container module loads.

A local CLI command pays for every module its container imports (~0.3 ms per dataclass it defines) though a masked
`get` builds only the secrets use case; the others (history, transfer, rotation, batch reveal, tokens, trusts,
federation) load on first use. dependency-injector's own "module.Class" strings import at class definition.
container.py annotates each such provider with its class (imported for type checking only), so mypy still checks
every caller; tests/unit/test_deferred.py resolves every path.
"""

from __future__ import annotations

import importlib
from typing import Any


class Deferred:
    """`Deferred("sprongus.service.transfer:TransferOps")`: called like the class, it imports the class on its first
    call and passes the arguments on."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.__name__ = path.partition(":")[2]

    def resolve(self) -> Any:
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Deferred({self.path!r})"
