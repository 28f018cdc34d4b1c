"""benchmarks/load_reveal.py with small numbers against the production stack: the invariants hold under load."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.e2e.gunicorn.conftest import REVEAL_LIMIT, Stack
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn and a bao binary")

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "load_reveal.py"


@functools.cache
def load_reveal() -> ModuleType:
    """The script, imported from its file (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("load_reveal", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("load_reveal", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_bounded_load_on_list_and_reveal_keeps_every_invariant(stack: Stack) -> None:
    project = stack.unique("proj")
    token = stack.token(stack.unique("load"), projects=(project,))
    assert stack.api(token).put(f"/v1/secrets/project/{project}/load.token", json={"value": CANARY}).status_code == 201

    report = load_reveal().run_load(stack.url, token, f"project:{project}", "load.token", threads=6,
                                    max_requests=300, max_seconds=20, reveal_every=4, canary=CANARY, log=stack.log)

    assert report.violations(REVEAL_LIMIT) == []
    assert report.count("reveal", 200) == REVEAL_LIMIT
    assert report.count("reveal", 429) == 75 - REVEAL_LIMIT
    assert report.count("list", 200) == 225
    assert report.seconds < 20


def test_the_load_script_refuses_addresses_off_loopback() -> None:
    with pytest.raises(SystemExit, match="loopback"):
        load_reveal().run_load("http://192.0.2.1:8000", "spr_x", "project:p", "k", threads=1, max_requests=1,
                               max_seconds=1)
