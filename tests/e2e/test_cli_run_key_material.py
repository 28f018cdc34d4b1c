"""`secrets run` hands COMMAND the scope's secrets, not the raw key material of the `env` key provider (real
`sprongus` processes on a local vault): with SPRONGUS_MASTER_KEYS in the runner's environment, every secret of the
vault opened for whatever COMMAND's environment ends up in (a crash report, an error tracker, `env` in a CI log)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain")

MASTER = "k1:" + "Q" * 43 + "="
HMAC = "h1:" + "R" * 43 + "="
KEYS = {"SPRONGUS_KEY_PROVIDER": "env", "SPRONGUS_MASTER_KEYS": MASTER, "SPRONGUS_HMAC_KEYS": HMAC}
DUMP = "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))"
CANARY = "canary-run-keys-5d1e"


def child_env(machine: Machine, tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    out = tmp_path / "env.json"
    machine.ok("secrets", "run", SCOPE, "--", sys.executable, "-c", DUMP, str(out), env={**KEYS, **extra})
    got: dict[str, str] = json.loads(out.read_text())
    return got


def test_the_master_and_hmac_keys_never_reach_the_command(machine: Machine, tmp_path: Path) -> None:
    machine.ok("secrets", "set", SCOPE, "api.token", "-", input=CANARY, env=KEYS)
    env = child_env(machine, tmp_path, {"SPRONGUS_TOKEN": "spr_not_used_locally", "OTHER_SETTING": "kept"})
    assert env["API_TOKEN"] == CANARY  # the scope's secret
    assert "SPRONGUS_MASTER_KEYS" not in env and "SPRONGUS_HMAC_KEYS" not in env
    assert MASTER not in json.dumps(env) and HMAC not in json.dumps(env)
    # The rest of the runner's environment, sprongus' settings included, goes through as before.
    assert env["OTHER_SETTING"] == "kept" and env["SPRONGUS_TOKEN"] == "spr_not_used_locally"
    assert env["SPRONGUS_KEY_PROVIDER"] == "env" and env["SPRONGUS_HOME"] == str(machine.home)


def test_a_sprongus_inside_the_command_is_told_what_it_lacks(machine: Machine) -> None:
    """Without the keys, a nested local command on the `env` provider stops with a configuration error (exit 2)
    naming the variable, not with a wrong key or an integrity error."""
    machine.ok("secrets", "set", SCOPE, "api.token", "-", input=CANARY, env=KEYS)
    nested = machine.run("secrets", "run", SCOPE, "--", sys.executable, "-m", "sprongus.entrypoints.cli",
                         "secrets", "get", SCOPE, "api.token", env=KEYS)
    assert nested.returncode == 2, (nested.returncode, nested.stderr)
    assert "SPRONGUS_MASTER_KEYS" in nested.stderr
    assert CANARY not in nested.stdout + nested.stderr and MASTER not in nested.stderr
