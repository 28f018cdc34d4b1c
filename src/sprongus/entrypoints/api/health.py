"""`/v1/health`: the liveness and readiness probes of load balancers and orchestrators.

No authentication, no rate limit and no audit row: a prober holds no credential and is no tenant. The answers say
which dependency answers and nothing more (no host, version, driver message or count), so they are safe to expose.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Response
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from sprongus.adapters.problem_types import PROBLEM_JSON
from sprongus.entrypoints.api.problems import problem
from sprongus.entrypoints.api.schemas import Problem
from sprongus.entrypoints.profiles import KMS_SCHEMES
from sprongus.entrypoints.storage import ping_database

if TYPE_CHECKING:
    from sprongus.entrypoints.container import Container

log = logging.getLogger("sprongus.api")
NO_STORE = {"Cache-Control": "no-store"}  # a cached "ok" would hide an outage from the next prober
# Each check's name in the answer, and how a failure's detail calls it.
DEPENDENCIES = {"database": "database", "rateLimitStore": "rate-limit store", "keyProvider": "key provider"}


class Live(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class Ready(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))
    checks = fields.Dict(keys=fields.String(validate=validate.OneOf(list(DEPENDENCIES))),
                         values=fields.String(validate=validate.OneOf(["ok"])), required=True)


class Readiness:
    """Runs the checks at most once per `max_age` seconds per process, whatever the probe rate: probes from every
    load balancer must not become load on the database, Redis or a KMS. Concurrent probes share one run."""

    def __init__(self, checks: Mapping[str, Callable[[], object]], max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._checks = dict(checks)
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._report: dict[str, bool] | None = None
        self._at = 0.0

    def report(self) -> dict[str, bool]:
        """Check name -> whether it answered."""
        with self._lock:
            if self._report is None or self._clock() - self._at >= self._max_age:
                self._report = {name: _passes(name, check) for name, check in self._checks.items()}
                self._at = self._clock()  # after the run: a slow failing check is not rerun at once
            return dict(self._report)


def _passes(name: str, check: Callable[[], object]) -> bool:
    try:
        ok, reason = check() is not False, "no answer"
    except Exception as exc:  # any failure means "not ready"; the log says which kind, never a driver's message
        ok, reason = False, type(exc).__name__
    if not ok:
        log.warning("readiness: %s unavailable (%s)", DEPENDENCIES.get(name, name), reason)
    return ok


def readiness(container: Container) -> Readiness:
    """The database answers a round trip, the rate-limit store a PING (always, in memory), and a KMS names its
    current key (Vault reads the key, Google Cloud encrypts a probe; AWS and a cached Azure version answer without
    a call). A local key provider is not asked: it is in this process, and asking a file or keychain provider
    for its current key would make the first key of a vault that has none, outside the checks of a first write."""
    storage, limiter, keys = container.storage(), container.rate_limiter(), container.master_keys()
    remote_keys = container.config.keys.backend() in KMS_SCHEMES
    return Readiness({"database": lambda: ping_database(storage), "rateLimitStore": limiter.available,
                      "keyProvider": keys.current_key_id if remote_keys else lambda: None},
                     container.config.api.ready_max_age())


def health_blueprint(probe: Readiness) -> Blueprint:
    blp = Blueprint("health", __name__, url_prefix="/v1/health", description="Liveness and readiness probes")

    @blp.route("/live", methods=["GET"])
    @blp.doc(security=[])
    @blp.response(200, Live, description="The process serves requests")
    def live() -> tuple[dict[str, Any], int, dict[str, str]]:
        """Liveness: 200 while the process serves requests; no dependency is checked (a database outage must not
        get healthy processes restarted)."""
        return {"status": "ok"}, 200, NO_STORE

    @blp.route("/ready", methods=["GET"])
    @blp.doc(security=[])
    @blp.response(200, Ready, description="Every dependency answers")
    @blp.alt_response(503, schema=Problem, content_type=PROBLEM_JSON,
                      description="A dependency does not answer; `detail` names it")
    def ready() -> Any:
        """Readiness: the database, the rate-limit store and the key provider answer (checked at most every
        SPRONGUS_READY_MAX_AGE seconds per process)."""
        report = probe.report()
        failing = [f"{DEPENDENCIES[name]} unavailable" for name, ok in report.items() if not ok]
        if failing:
            response: Response = problem(503, "not-ready", "Not ready", "; ".join(failing))
            return response
        return {"status": "ok", "checks": {name: "ok" for name in report}}, 200, NO_STORE

    return blp
