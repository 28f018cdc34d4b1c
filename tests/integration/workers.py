"""Worker processes for the integration tests: `python -m tests.integration.workers <command> ...` from the repo root.

The configuration comes from the environment (SPRONGUS_DATABASE_URL, SPRONGUS_MASTER_KEYS, SPRONGUS_BATCH_SIZE),
as for `sprongus` itself. Results go to stdout as one JSON line (set) or as progress lines (rotate-master).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from typing import Any

from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container
from tests.harness import use_cases


def principal(subject: str, projects: str) -> Principal:
    if subject == "owner":
        return Principal.local_owner("owner")
    from tests.integration.stack import ALL

    return Principal(subject, ALL, frozenset(p for p in projects.split(",") if p))


def set_many(args: argparse.Namespace) -> int:
    """Threads that all set the same keys, each recording the versions the service returned to it."""
    container = build_container(Settings.from_env())
    service = use_cases(container)
    caller = principal(args.subject, args.projects)
    scope = Scope.parse(args.scope)
    keys = args.keys.split(",")
    start = threading.Barrier(args.threads)
    results: list[dict[str, Any]] = [{"versions": {k: [] for k in keys}, "errors": []} for _ in range(args.threads)]

    def run(index: int) -> None:
        mine = results[index]
        start.wait()
        for round_ in range(args.rounds):
            for key in keys:
                value = SecretValue(f"{args.name}/{index}/{round_}")
                try:
                    mine["versions"][key].append(service.secrets.set(caller, scope, key, value).view.version)
                except Exception as exc:  # every error a caller would see is a failure of the test
                    mine["errors"].append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.threads)]
    time.sleep(max(0.0, args.start_at - time.time()))  # the processes start their writes together
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished = time.time()
    container.database().db.close()
    print(json.dumps({"worker": args.name, "threads": results, "started": started, "finished": finished}),
          flush=True)
    return 0


def rotate_master(args: argparse.Namespace) -> int:
    """Master-key rotation that reports each committed batch, optionally pausing so a test can kill it mid-way."""
    container = build_container(Settings.from_env())
    service = use_cases(container)

    def progress(done: int, total: int | None) -> None:
        print(f"progress {done} {total}", flush=True)
        if args.pause:
            time.sleep(args.pause)

    report = service.rotation.rotate_master(Principal.local_owner("owner"), progress=progress)
    print(f"done {report.rotated} {report.skipped}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.workers")
    commands = parser.add_subparsers(dest="command", required=True)
    setter = commands.add_parser("set")
    setter.add_argument("--name", required=True)
    setter.add_argument("--scope", required=True)
    setter.add_argument("--keys", required=True, help="comma-separated key names")
    setter.add_argument("--threads", type=int, default=4)
    setter.add_argument("--rounds", type=int, default=10)
    setter.add_argument("--subject", default="owner")
    setter.add_argument("--projects", default="")
    setter.add_argument("--start-at", type=float, default=0.0, help="epoch seconds at which to start writing")
    setter.set_defaults(run=set_many)
    rotator = commands.add_parser("rotate-master")
    rotator.add_argument("--pause", type=float, default=0.0, help="seconds to sleep after each batch")
    rotator.set_defaults(run=rotate_master)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    os.environ.setdefault("SPRONGUS_ENV", "dev")
    sys.exit(main())
