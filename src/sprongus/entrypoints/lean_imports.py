"""Keeps a local CLI command from loading integrations it never uses.

dependency-injector probes yaml, pydantic(-settings), FastAPI, Starlette and werkzeug (flask) when it is imported,
and peewee and playhouse (the migrations' pool module, loaded only when a vault needs a migration) probe the
Postgres drivers: together ~100 ms of a local `secrets get`. While those libraries load (the Postgres drivers:
while a SQLite vault's container is built), the probed modules are reported missing (their importers catch
ImportError); nothing is left behind, so a later `import flask` in the same process works as usual.

dependency-injector also imports asyncio (with ssl and subprocess: ~10 ms of a local `secrets get`) for three
functions that only async providers call, and the container has none: it loads with a stand-in for asyncio that
imports the real one when one of them is first called. peewee likewise imports socket (for IPField) and calendar
(for TimestampField), which the vault's models do not use (~15 million instructions, ~3 ms): with a SQLite vault it
loads with stand-ins for them that import the real module on first use.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

NEVER_LOCAL = ("yaml", "pydantic_settings", "pydantic", "fastapi", "fast_depends", "starlette", "werkzeug", "flask")
POSTGRES_DRIVERS = ("psycopg", "psycopg2")
# What dependency-injector 4.49+ takes from asyncio at import (providers, containers, _cwiring), all called only
# when a provider returns an awaitable. Earlier 4.x releases read asyncio.coroutines at import: they get asyncio.
DEFERRED_ASYNCIO = ("Future", "ensure_future", "gather")
DEFERRED_SINCE = (4, 49)
# What peewee imports at its top but reads only in fields the vault's models do not have.
UNUSED_BY_PEEWEE = ("socket", "calendar")


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


_SWAP = threading.Lock()  # two threads reading from one stand-in at once take it out of sys.modules once


def _real(name: str) -> ModuleType:
    stand_in = sys.modules.get(name)
    if isinstance(stand_in, _LoadsOnUse):  # asked for while the stand-in is in place
        with _SWAP:
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return importlib.import_module(name)


class _LoadsOnUse(ModuleType):
    """A module's stand-in while a library that imports it loads: the first name read from it imports the real
    module (a `from x import y` at the library's import too, which then costs what it did before). It is a plain
    module, not a package, and its dunders are its own: the import system's probes see no spec or path. `__all__`
    is the real module's, so a `from x import *` gets what it would have."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__all__":
            raise AttributeError(name)
        return getattr(_real(self.__name__), name)


@contextmanager
def _stand_ins(stand_ins: Sequence[_LoadsOnUse]) -> Iterator[None]:
    """Places them while the block runs, for the modules nobody has imported yet; a later import gets the real
    module, and a library that took a stand-in reaches the real module through it."""
    placed = [module for module in stand_ins if module.__name__ not in sys.modules]
    sys.modules.update((module.__name__, module) for module in placed)
    try:
        yield
    finally:
        for module in placed:
            if sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]


def _deferred(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real("asyncio"), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


class _DeferredAsyncio(_LoadsOnUse):
    """asyncio while dependency-injector is imported: its three names call the real asyncio, imported then; any
    other name imports it at once (a later release that takes more is slower, not broken). Not a package, so
    `from asyncio.coroutines import ...` fails and dependency-injector takes its own fallbacks (the coroutine types
    asyncio itself has from Python 3.12 on, a plain marker on its Coroutine provider): async providers only."""

    def __init__(self) -> None:
        super().__init__("asyncio", "stands in for asyncio while dependency-injector loads (lean_imports)")
        for name in DEFERRED_ASYNCIO:
            setattr(self, name, _deferred(name))


def _defers_asyncio() -> bool:
    """Only for the dependency-injector releases whose use of asyncio was read (a newer major may differ)."""
    from dependency_injector import __version__

    try:
        release = tuple(int(part) for part in __version__.split(".")[:2])
    except ValueError:
        return False
    return DEFERRED_SINCE <= release < (DEFERRED_SINCE[0] + 1, 0)


def _without_asyncio() -> AbstractContextManager[None]:
    if "dependency_injector.providers" in sys.modules or not _defers_asyncio():
        return nullcontext()
    return _stand_ins([_DeferredAsyncio()])


@contextmanager
def local_command(postgres: bool) -> Iterator[None]:
    """Around a local command's container build: the container's libraries are imported first with the
    integrations a local command never uses hidden, and with a SQLite vault the Postgres drivers stay hidden until
    the build ends (a new vault's first migration loads playhouse.migrations, which probes them)."""
    drivers = [] if postgres else [name for name in POSTGRES_DRIVERS if name not in sys.modules]
    with unavailable(drivers):
        with unavailable([name for name in NEVER_LOCAL if name not in sys.modules]):
            with _without_asyncio():
                for module in ("dependency_injector.containers", "dependency_injector.providers"):
                    importlib.import_module(module)
            # With a SQLite vault only: with Postgres, the driver peewee probes loads asyncio, ssl and email, which
            # would keep the stand-ins, and ssl needs the real socket anyway.
            with _stand_ins([] if postgres else [_LoadsOnUse(name) for name in UNUSED_BY_PEEWEE]):
                importlib.import_module("peewee")
        yield
