"""Process-wide switches read straight from the environment: the log level, debug tracebacks, colour.

Apart from config.py (the settings a command's container is built from) because every CLI start reads them, --help
included, and config.py's Settings dataclass costs a few milliseconds to define.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def log_level(environ: Mapping[str, str] | None = None) -> str:
    """SPRONGUS_LOG_LEVEL, WARNING unless it names a level."""
    import logging

    level = (os.environ if environ is None else environ).get("SPRONGUS_LOG_LEVEL", "WARNING").upper()
    return level if level in logging.getLevelNamesMapping() else "WARNING"


def debug_tracebacks(environ: Mapping[str, str] | None = None) -> bool:
    """SPRONGUS_DEBUG=1: the CLI prints (scrubbed) tracebacks of unexpected errors."""
    return (os.environ if environ is None else environ).get("SPRONGUS_DEBUG") == "1"


def no_color(environ: Mapping[str, str] | None = None) -> bool:
    """NO_COLOR (no-color.org): present and not empty, whatever its value, turns the CLI's colours off."""
    return bool((os.environ if environ is None else environ).get("NO_COLOR"))
