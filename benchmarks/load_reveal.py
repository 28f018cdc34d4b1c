"""A bounded load test on loopback: threads hammering list and reveal of one secret, checking what must hold.

Run from the repository root:  .venv/bin/python benchmarks/load_reveal.py [--threads 8] [--requests 2000]
                               [--seconds 20] [--reveal-every 4]

It starts its own gunicorn (the project's config, 2 workers, SPRONGUS_ENV=dev on a temporary SQLite home with an
env master key) with rate limits in an empty Redis database on 127.0.0.1:6379 when one can be claimed (flushed
afterwards), else one worker with in-memory limits. Or point it at a running server on this machine:
`--url http://127.0.0.1:8000 --token spr_... --scope project:p1 --key k --reveal-limit 10 [--log FILE]`
(the secret must hold `--canary`, and the token's subject must not have revealed anything this minute).

Each thread keeps one connection alive and sends list requests with a reveal every `--reveal-every` requests,
until `--requests` requests in all or `--seconds`, whichever comes first. Then it checks:
- reveals allowed: exactly the policy's count per window (every other reveal is a 429 with Retry-After);
- list answers: always masked, never a value;
- no 5xx, no transport error;
- the canary never in a non-reveal answer, nor in a line of the server's log.
Exits 1 if any check fails (it is a test as much as a measurement), else 0. Loopback addresses only.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

CANARY = "CANARY-sprongus-load-5e1d-do-not-leak"
WINDOW_SECONDS = 60  # the limits below are per minute: the exact-count check needs the run to fit in one window
LOOPBACK_NAMES = ("localhost",)


@dataclass
class Report:
    seconds: float = 0.0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport_errors: int = 0
    unmasked_list_items: int = 0
    canary_in_non_reveal: int = 0
    wrong_reveal_value: int = 0
    limited_without_retry_after: int = 0
    canary_in_log: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.transport_errors

    def count(self, kind: str, status: int) -> int:
        return self.statuses[(kind, status)]

    def violations(self, reveal_limit: int) -> list[str]:
        problems = []
        allowed, limited = self.count("reveal", 200), self.count("reveal", 429)
        reveals = sum(n for (kind, _), n in self.statuses.items() if kind == "reveal")
        if self.seconds < WINDOW_SECONDS and allowed != min(reveal_limit, reveals):
            problems.append(f"{allowed} reveals allowed, the policy allows {reveal_limit} per window")
        if allowed + limited != reveals:
            problems.append(f"reveals answered other than 200/429: {self._of('reveal')}")
        if self.count("list", 200) != sum(n for (kind, _), n in self.statuses.items() if kind == "list"):
            problems.append(f"list answered other than 200: {self._of('list')}")
        if any(status >= 500 for (_, status) in self.statuses):
            problems.append("a 5xx answer")
        for name in ("transport_errors", "unmasked_list_items", "canary_in_non_reveal", "wrong_reveal_value",
                     "limited_without_retry_after", "canary_in_log"):
            if getattr(self, name):
                problems.append(f"{name.replace('_', ' ')}: {getattr(self, name)}")
        return problems

    def _of(self, kind: str) -> dict[int, int]:
        return {status: n for (k, status), n in self.statuses.items() if k == kind}


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host in LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing {url}: the load test only talks to loopback addresses")


def run_load(url: str, token: str, scope: str, key: str, *, threads: int, max_requests: int, max_seconds: float,
             reveal_every: int = 4, canary: str = CANARY, log: Path | None = None) -> Report:
    """Bounded: stops after `max_requests` requests in all or `max_seconds`, whichever comes first."""
    require_loopback(url)
    owner_type, _, owner_id = scope.partition(":")
    list_url = f"{url}/v1/secrets"
    list_query = {"ownerType": owner_type, "ownerId": owner_id or None, "limit": 50}
    reveal_url = f"{url}/v1/secrets/{owner_type}/{owner_id or '-'}/{key}:reveal"
    headers = {"Authorization": f"Bearer {token}"}
    report, lock = Report(), threading.Lock()
    budget = iter(range(max_requests))
    deadline = time.monotonic() + max_seconds
    log_start = log.stat().st_size if log is not None and log.exists() else 0

    def take() -> int | None:
        with lock:
            return next(budget, None) if time.monotonic() < deadline else None

    def worker() -> None:
        session = requests.Session()
        seen: Counter[tuple[str, int]] = Counter()
        local = Report()
        while (n := take()) is not None:
            reveal = n % reveal_every == reveal_every - 1
            kind = "reveal" if reveal else "list"
            began = time.perf_counter()
            try:
                if reveal:
                    answer = session.post(reveal_url, json={}, headers=headers, timeout=30)
                else:
                    answer = session.get(list_url, params=list_query, headers=headers, timeout=30)
            except requests.RequestException:
                local.transport_errors += 1
                continue
            local.latencies.append(time.perf_counter() - began)
            seen[(kind, answer.status_code)] += 1
            ok = answer.status_code == 200
            if reveal and ok:
                local.wrong_reveal_value += answer.json().get("value") != canary
                continue
            local.canary_in_non_reveal += canary in answer.text
            if reveal:
                local.limited_without_retry_after += answer.status_code == 429 and not answer.headers.get(
                    "Retry-After", "").isdigit()
            elif ok:
                local.unmasked_list_items += sum(1 for item in answer.json()["items"]
                                                 if item.get("masked") is not True or item.get("value") != "********")
        session.close()
        with lock:
            report.statuses.update(seen)
            report.latencies.extend(local.latencies)
            for name in ("transport_errors", "unmasked_list_items", "canary_in_non_reveal", "wrong_reveal_value",
                         "limited_without_retry_after"):
                setattr(report, name, getattr(report, name) + getattr(local, name))

    began = time.monotonic()
    pool = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(max_seconds + 60)  # every request has a 30 s timeout, so this always returns
    report.seconds = time.monotonic() - began
    if log is not None:
        time.sleep(0.2)  # the last access lines
        with log.open("rb") as handle:
            handle.seek(log_start)
            report.canary_in_log = sum(canary.encode() in line for line in handle)
    return report


def print_report(report: Report, reveal_limit: int) -> list[str]:
    lat = sorted(report.latencies) or [0.0]
    p50, p99 = lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    rate = report.requests / max(report.seconds, 1e-9)
    print(f"{report.requests} requests in {report.seconds:.1f} s ({rate:,.0f} req/s), p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms")
    for (kind, status), n in sorted(report.statuses.items()):
        print(f"  {kind:<7} {status}  {n:>7}")
    problems = report.violations(reveal_limit)
    print(f"reveal allowed: {report.count('reveal', 200)} (policy {reveal_limit}/minute)")
    print("checks: " + ("all hold" if not problems else "FAILED\n  " + "\n  ".join(problems)))
    return problems


# --- self-hosted mode ----------------------------------------------------------------------------------------


@contextmanager
def redis_database() -> Iterator[str | None]:
    """An empty Redis database (1-15) on loopback, claimed with a marker key and flushed afterwards; else None."""
    try:
        import redis
    except ImportError:
        yield None
        return
    marker = uuid.uuid4().hex
    try:
        for number in range(1, 16):
            client = redis.Redis(host="127.0.0.1", port=6379, db=number, socket_timeout=3)
            if client.set("sprongus:load:claimed", marker, nx=True, ex=3600) and client.dbsize() == 1:
                try:
                    yield f"redis://127.0.0.1:6379/{number}"
                finally:
                    client.flushdb()
                return
            if client.get("sprongus:load:claimed") == marker.encode():
                client.delete("sprongus:load:claimed")
    except redis.RedisError:
        pass
    yield None


def self_hosted(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_api import create_token, start_gunicorn

    work = Path(tempfile.mkdtemp(prefix="sprongus-load-"))
    try:
        with ExitStack() as stack:
            storage = stack.enter_context(redis_database())
            settings = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(work / "home"),
                        "SPRONGUS_MASTER_KEYS": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
                        "SPRONGUS_RATE_LIMIT_REVEAL": f"{args.reveal_limit}/minute",
                        "SPRONGUS_RATE_LIMIT_STORAGE": storage or "memory://",
                        "WEB_CONCURRENCY": "2" if storage else "1"}
            print(f"gunicorn: {settings['WEB_CONCURRENCY']} worker(s), rate limits in "
                  f"{storage or 'memory (no Redis on 127.0.0.1:6379: one worker, so the count stays exact)'}")
            token = create_token(settings, "load", ["load"], work)
            server = start_gunicorn("sprongus.entrypoints.api:create_app()", settings, work / "gunicorn.log")
            stack.callback(server.stop)
            put = requests.put(f"{server.url}/v1/secrets/project/load/{args.key}", json={"value": CANARY},
                               headers={"Authorization": f"Bearer {token}"}, timeout=30)
            put.raise_for_status()
            report = run_load(server.url, token, "project:load", args.key, threads=args.threads,
                              max_requests=args.requests, max_seconds=args.seconds, reveal_every=args.reveal_every,
                              log=server.log)
            server.stop()
            text = server.log.read_text(errors="replace")
            report.canary_in_log += text.count(CANARY) + text.count(token)
            return 1 if print_report(report, args.reveal_limit) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="requests in all (default 2000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit (default 20 s, at most 50)")
    parser.add_argument("--reveal-every", type=int, default=4, help="one reveal per N requests (default 4)")
    parser.add_argument("--reveal-limit", type=int, default=10, help="SPRONGUS_RATE_LIMIT_REVEAL per minute")
    parser.add_argument("--key", default="load.token")
    parser.add_argument("--url", help="a running server on loopback instead of a self-hosted one")
    parser.add_argument("--token")
    parser.add_argument("--scope")
    parser.add_argument("--canary", default=CANARY, help="the value the secret holds (with --url)")
    parser.add_argument("--log", type=Path, help="the server's log file to scan for the canary (with --url)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 50 or args.threads < 1 or args.requests < 1 or args.reveal_every < 1:
        parser.error("--seconds must be in (0, 50]; --threads, --requests and --reveal-every positive")
    if args.url is None:
        return self_hosted(args)
    if not (args.token and args.scope):
        parser.error("--url needs --token and --scope")
    report = run_load(args.url, args.token, args.scope, args.key, threads=args.threads, max_requests=args.requests,
                      max_seconds=args.seconds, reveal_every=args.reveal_every, canary=args.canary, log=args.log)
    return 1 if print_report(report, args.reveal_limit) else 0


if __name__ == "__main__":
    sys.exit(main())
