"""gunicorn's logger without its access log: the app writes its own access line (see gunicorn_conf.py)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]  # gunicorn ships no types


class NoAccessLogger(Logger):  # type: ignore[misc]
    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Nothing: `sprongus.api.access` is the access log."""
