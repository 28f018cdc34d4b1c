"""Gunicorn settings for the sprongus API (docs/deploy.md).

    gunicorn -c python:sprongus.entrypoints.api.gunicorn_conf 'sprongus.entrypoints.api:create_app()'

Gunicorn reads this module as its config file: module-level names are its settings. Options given on the command
line (or in GUNICORN_CMD_ARGS) override them, e.g. `--workers 8` or `-k sync`.

- bind: SPRONGUS_BIND, else 127.0.0.1:8000 (loopback: put a TLS-terminating proxy in front, docs/deploy.md).
- workers: WEB_CONCURRENCY, else 2 per CPU (at least 2). Each worker runs `threads` threads (gthread), so one
  slow KMS or database call does not stall the worker; a request holds one pooled database connection (Postgres)
  and gives it back when it ends.
- preload off: each worker builds its own container (database connections, KMS client, Redis pool) after the
  fork, instead of inheriting sockets opened by the master.
- on_starting: in-memory rate limits with more than one worker are refused outside dev (and warned about in
  dev) before any worker starts: each worker would count alone, letting N times every limit through.
- post_fork: an expected error while a worker loads the app is printed as its one line, without a traceback.
- access log off: the app writes one structured JSON line per request itself (logger `sprongus.api.access`),
  with the request id and subject and without headers, query strings or bodies. Everything goes to stderr,
  through the root handler that the app's log-redaction filter is attached to.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.config import Settings, server_bind, server_workers
from sprongus.entrypoints.profiles import rate_limit_backend

bind = [server_bind()]
workers = server_workers()
# gthread keeps client connections alive (sync workers close every one) and serves a few requests per process
# at once, which a request waiting on a KMS or on Postgres needs. The app is thread-safe: peewee keeps one
# connection per thread, and the container's singletons are built before the first request.
worker_class = "gthread"
threads = 4
preload_app = False


def _socket_per_worker(address: str) -> bool:
    """A TCP port of its own: not a Unix socket or an inherited descriptor (each worker would take the path over),
    not port 0 (each worker would get a different port)."""
    if address.startswith(("unix:", "fd://")):
        return False
    port = address.rpartition(":")[2]
    return port.isdigit() and int(port) != 0


# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new connections across them. On one
# shared socket, whichever worker woke first took the connection: a client (or a proxy) with few keep-alive
# connections sometimes had all of them on one worker, and half the cores idle (benchmarks/bench_peers.py saw
# reveals at ~1,100/s or ~2,100/s from one run to the next; with this, ~2,000 every time).
reuse_port = _socket_per_worker(bind[0])

# A worker silent this long is killed and replaced: longer than the slowest legitimate request (the KMS and
# database calls time out well before), short enough to recover a wedged worker quickly.
timeout = 30
# SIGTERM: finish in-flight requests for up to this long (below the usual 30 s orchestrator grace period).
graceful_timeout = 20
# Idle keep-alive connections close after this; keep it above the idle timeout of a proxy in front, if any.
keepalive = 5
# Headroom for the largest legitimate request line (list queries are short); the body limit is the app's.
limit_request_line = 4094
# The heartbeat file on tmpfs where there is one: a slow disk must not get workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - not a temp file, a tmpfs dir

# gunicorn 27's control socket (runtime worker changes, reload, shutdown) is one more management interface, and
# instances of one user would share its default path: signals do the same job. Older gunicorns ignore the name.
control_socket_disable = True

accesslog = None
# With a logconfig_dict, gunicorn still builds each request's access-log fields (headers, environ) before its
# silenced `gunicorn.access` logger drops the line: a few percent of a masked read. This logger skips them.
logger_class = "sprongus.entrypoints.api.gunicorn_logger.NoAccessLogger"
errorlog = "-"
loglevel = "info"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"},
    },
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        # Off: its lines would duplicate the app's and could carry a query string or user agent.
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        "sprongus": {"level": "INFO", "handlers": [], "propagate": True},
    },
}


def worker_rate_limit_notice(settings: Settings, workers: int) -> str | None:
    """A warning to log (dev), or a ConfigError (test, prod), when several workers would count rate limits alone."""
    if workers <= 1 or rate_limit_backend(settings) != "memory":
        return None
    if settings.env != "dev":
        raise ConfigError("SPRONGUS_RATE_LIMIT_STORAGE: in-memory rate limits are refused with more than one "
                          "gunicorn worker outside SPRONGUS_ENV=dev (each worker would count alone); use redis:// "
                          "or one worker")
    return (f"SPRONGUS_RATE_LIMIT_STORAGE: in-memory rate limits with {workers} workers: each worker counts alone, "
            f"so up to {workers} times every limit gets through; use redis:// to share them")


def post_fork(server: Any, worker: Any) -> None:
    """Runs in each worker before it loads the app: a SprongusError at load (a refused setting, a schema not
    current, an unreachable KMS) becomes gunicorn's AppImportError, which it prints as one line (the useful one)
    and stops on ("App failed to load", exit 4), instead of a 41-line traceback ending in that line."""
    load = worker.load_wsgi

    def load_or_one_line() -> None:
        from gunicorn.errors import AppImportError  # type: ignore[import-untyped]  # gunicorn ships no types

        from sprongus.domain.errors import SprongusError
        from sprongus.domain.redaction import scrub_text

        try:
            load()
        except SprongusError as exc:
            raise AppImportError(f"error: {scrub_text(str(exc))}") from None

    worker.load_wsgi = load_or_one_line


def on_starting(server: Any) -> None:
    """Runs once in the master, before any worker forks, with the worker count that command-line options and
    GUNICORN_CMD_ARGS have already applied (the module-level `workers` above only knows WEB_CONCURRENCY)."""
    try:
        warning = worker_rate_limit_notice(Settings.from_env(), server.cfg.workers)
    except ConfigError as exc:
        # gunicorn prints a RuntimeError from the master as one "Error: ..." line and exits 1; any other exception
        # here would print a traceback.
        raise RuntimeError(str(exc)) from None
    if warning:
        server.log.warning(warning)
    if server.cfg.reuse_port:
        for address in server.cfg.address:
            _probe(address)
            server.log.info("Listening at: http://%s:%s (a socket per worker, SO_REUSEPORT)", *address[:2])


def _probe(address: Any) -> None:
    """With a socket per worker the master binds nothing: a port that another program held made every worker fail
    to bind, and gunicorn started them again and again instead of stopping. One bind here, with the workers'
    options, fails at start instead (one "Error: ..." line, exit 1)."""
    host, port = address[:2]
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(where)
    except OSError as exc:
        raise RuntimeError(f"SPRONGUS_BIND: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
