"""The CLI's lean imports: dependency-injector loads without asyncio, peewee without socket and calendar, and nothing
is broken for whoever needs them.

Each check runs in a fresh interpreter: the test process has asyncio and dependency-injector loaded already.
"""

from __future__ import annotations

import subprocess
import sys

import dependency_injector
import pytest

from sprongus.entrypoints import lean_imports

PROBE = """
import sys
from sprongus.entrypoints.lean_imports import local_command

with local_command(postgres=False):
    from dependency_injector import containers, providers
    assert "asyncio" not in sys.modules, "dependency-injector loaded asyncio"

class Box(containers.DeclarativeContainer):
    value = providers.Singleton(dict, answer=42)

assert Box().value() == {"answer": 42}  # a synchronous provider, as the container has only
assert "asyncio" not in sys.modules, "a synchronous provider loaded asyncio"

import asyncio  # the real one, as if nothing had happened

assert hasattr(asyncio, "run") and asyncio.__spec__ is not None

async def answer() -> int:
    return 42

async def main() -> tuple[int, int]:
    # An async provider: dependency-injector's Future, ensure_future and gather reach the real asyncio.
    single = providers.Singleton(answer)
    both = providers.List(providers.Factory(answer), single)
    values = await both()
    return values[0], await single()

assert asyncio.run(main()) == (42, 42)
print("ok")
"""


def _passes(probe: str) -> None:
    """Runs in a fresh interpreter, to its end."""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_dependency_injector_loads_without_asyncio_and_async_providers_still_work() -> None:
    _passes(PROBE)


HOLDERS = """
def holders():
    \"\"\"The modules that keep a stand-in among their names.\"\"\"
    return sorted(name for name, module in list(sys.modules.items()) if module is not None
                  and any(type(value).__name__ == "_LoadsOnUse" for value in list(vars(module).values())))
"""
PEEWEE_PROBE = """
import datetime, sys
from sprongus.entrypoints.lean_imports import local_command
""" + HOLDERS + """
with local_command(postgres=False):
    import peewee
    assert "socket" not in sys.modules and "calendar" not in sys.modules, "peewee loaded them"
assert "socket" not in sys.modules and "calendar" not in sys.modules, "a stand-in was left in sys.modules"
assert holders() == ["peewee"], holders()

# The fields that read them still work: peewee reaches the real modules through the stand-ins.
assert peewee.IPField().db_value("10.1.2.3") == 167838211
moment = datetime.datetime(2026, 12, 7, 6, 0, tzinfo=datetime.timezone.utc)
assert peewee.TimestampField(utc=True).db_value(moment) == 1796623200
import calendar, socket  # the real ones, as if nothing had happened

assert socket.__spec__ is not None and callable(socket.create_connection) and calendar.isleap(2028)
assert type(sys.modules["socket"]).__name__ == "module"
print("ok")
"""


def test_peewee_loads_without_socket_and_calendar_and_its_fields_still_reach_them() -> None:
    _passes(PEEWEE_PROBE)


POSTGRES_PROBE = """
import sys
from sprongus.entrypoints.lean_imports import local_command
""" + HOLDERS + """
with local_command(postgres=True):
    import peewee
assert "psycopg" in sys.modules  # peewee found the driver: with it came asyncio, ssl and email
assert holders() == [], holders()  # none of them keeps a stand-in: with Postgres there are none
print("ok")
"""


def test_with_a_postgres_vault_no_module_keeps_a_stand_in() -> None:
    _passes(POSTGRES_PROBE)


def test_a_stand_in_gives_the_real_modules_names_to_a_star_import() -> None:
    stand_in = lean_imports._LoadsOnUse("calendar")
    import calendar

    assert stand_in.__all__ == calendar.__all__
    assert stand_in.isleap(2028)
    with pytest.raises(AttributeError):
        stand_in.__path__  # noqa: B018  # the import system's probes: a plain module's answer


@pytest.mark.parametrize(("version", "deferred"), [("4.49.1", True), ("4.52.0", True), ("4.48.2", False),
                                                   ("4.41.0", False), ("5.0.0", False), ("4.50.0rc1", True),
                                                   ("dev", False)])
def test_asyncio_is_deferred_only_for_the_releases_read(monkeypatch: pytest.MonkeyPatch, version: str,
                                                        deferred: bool) -> None:
    """4.48 and earlier read asyncio.coroutines at import; another major release is another codebase."""
    monkeypatch.setattr(dependency_injector, "__version__", version)
    assert lean_imports._defers_asyncio() is deferred
