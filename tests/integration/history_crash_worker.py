"""A process to kill -9 in the middle of a history operation:
`python -m tests.integration.history_crash_worker <operation> <moment>` from the repo root.

It builds the real container from the environment (SPRONGUS_DATABASE_URL, SPRONGUS_MASTER_KEYS,
SPRONGUS_MAX_VERSIONS, SPRONGUS_DELETE_RETENTION), wraps one repository method so that at the chosen moment, with
the operation's transaction open and some of its statements run, it prints `paused` and sleeps; the test then
sends SIGKILL. Nothing is mocked away: the statements before the pause really ran against the database.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from sprongus.adapters.peewee.repository import PeeweeSecretRepository
from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from tests.harness import use_cases

SCOPE = Scope.project("p1")
KEY = "db.password"

# moment -> (repository method, which call pauses (1 = the first), pause after the original ran (else before))
MOMENTS: dict[str, tuple[str, int, bool]] = {
    "after-archive": ("archive", 1, True),  # old current copied into secret_version, new one not saved yet
    "after-save": ("prune", 1, False),  # new current saved, the window not pruned yet
    "after-prune": ("prune", 1, True),  # versions destroyed, their `destroy` audit rows not written yet
    "mid-purge": ("prune", 1, True),  # purge: kept versions deleted, the secret_kv row still there
    "before-tombstone": ("_remember_purged", 1, False),  # purge: every row gone, the last number not yet kept
    "second-secret": ("purge", 2, True),  # purge_expired: the first secret committed, the second mid-purge
}


def pause_at(name: str, call: int, after: bool) -> None:
    original: Callable[..., Any] = getattr(PeeweeSecretRepository, name)
    calls = 0

    def wrapped(self: PeeweeSecretRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call and not after:
            _pause()
        result = original(self, *args, **kwargs)
        if calls == call and after:
            _pause()
        return result

    setattr(PeeweeSecretRepository, name, wrapped)


def _pause() -> None:
    print("paused", flush=True)
    time.sleep(600)  # the test kills this process long before
    sys.exit(3)


def main(operation: str, moment: str) -> int:
    container = build_container(Settings.from_env())
    ops = use_cases(container)
    owner = Principal.local_owner("owner")
    pause_at(*MOMENTS[moment])
    if operation == "rollback":
        ops.history.rollback(owner, SCOPE, KEY, 1)
    elif operation == "set":
        ops.secrets.set(owner, SCOPE, KEY, SecretValue("value-new"))
    elif operation == "purge":
        ops.history.purge(owner, SCOPE, KEY)
    elif operation == "purge-expired":
        ops.history.purge_expired(owner)
    else:
        raise SystemExit(f"unknown operation {operation}")
    print("finished", flush=True)  # the moment never came: the test fails on this
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
