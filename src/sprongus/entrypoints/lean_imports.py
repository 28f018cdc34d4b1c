"""Keeps a local CLI command from loading integrations it never uses.

dependency-injector probes yaml, pydantic(-settings), FastAPI, Starlette and werkzeug (flask) when it is imported,
and peewee and playhouse (the migrations' pool module, loaded only when a vault needs a migration) probe the
Postgres drivers: together ~100 ms of a local `secrets get`. While those libraries load (the Postgres drivers:
while a SQLite vault's container is built), the probed modules are reported missing (their importers catch
ImportError); nothing is left behind, so a later `import flask` in the same process works as usual.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

NEVER_LOCAL = ("yaml", "pydantic_settings", "pydantic", "fastapi", "fast_depends", "starlette", "werkzeug", "flask")
POSTGRES_DRIVERS = ("psycopg", "psycopg2")


class _Unavailable:
    """A meta-path finder that answers "not installed" for some top-level packages."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = tuple(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec:
        if fullname.split(".")[0] in self._names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None  # type: ignore[return-value]  # not ours: the next finder decides


@contextmanager
def unavailable(names: Sequence[str]) -> Iterator[None]:
    finder = _Unavailable(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


@contextmanager
def local_command(postgres: bool) -> Iterator[None]:
    """Around a local command's container build: the container's libraries are imported first with the
    integrations a local command never uses hidden, and with a SQLite vault the Postgres drivers stay hidden until
    the build ends (a new vault's first migration loads playhouse.migrations, which probes them)."""
    drivers = [] if postgres else [name for name in POSTGRES_DRIVERS if name not in sys.modules]
    with unavailable(drivers):
        with unavailable([name for name in NEVER_LOCAL if name not in sys.modules]):
            for module in ("dependency_injector.containers", "dependency_injector.providers", "peewee"):
                importlib.import_module(module)
        yield
