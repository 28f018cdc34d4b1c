"""`secrets run` hands COMMAND the scope's secrets, not the raw key material of the `env` key provider (real
`sprongus` processes on a local vault): with SPRONGUS_MASTER_KEYS in the runner's environment, every secret of the
vault opened for whatever COMMAND's environment ends up in (a crash report, an error tracker, `env` in a CI log)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


# COMMAND reads what it can of its parent, the `sprongus` that started it: its environment, then its memory.
PEEK = """import os, sys
parent = os.getppid()
found = []
for part in ("environ", "mem"):
    try:
        with open(f"/proc/{parent}/{part}", "rb") as f:
            found.append(f"{part}:{'MASTER' if sys.argv[1].encode() in f.read(1 << 20) else 'opened'}")
    except OSError:
        found.append(f"{part}:refused")
print(" ".join(found))
"""


def _without_privileges() -> list[str]:
    """As the superuser, the kernel lets any process read any other's /proc files: run as it with no capabilities
    (what a same-user process has), parent and COMMAND alike. As anyone else: as is."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as the superuser without setpriv (util-linux): no unprivileged parent to test")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"]


def test_the_command_cannot_read_the_keys_out_of_the_runner(machine: Machine) -> None:
    """Withholding the keys from COMMAND's environment was not enough: the `sprongus` that started it still held
    them in its own, in /proc/<pid>/environ, which a same-user process may read. The runner is made undumpable
    before it starts COMMAND, so those files are the superuser's only."""
    machine.ok("secrets", "set", SCOPE, "api.token", "-", input=CANARY, env=KEYS)
    done = subprocess.run([*_without_privileges(), *machine.argv("secrets", "run", SCOPE, "--", sys.executable,
                                                                   "-c", PEEK, MASTER)],
                          capture_output=True, text=True, env=machine.env(extra=KEYS), cwd=machine.root, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["environ:refused", "mem:refused"]


def test_without_ctypes_the_command_still_runs_with_a_warning(machine: Machine, tmp_path: Path) -> None:
    """Making the runner undumpable is a defence, not a precondition: a Python without ctypes (or a libc it cannot
    load) runs COMMAND all the same, and says what it could not do."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['ctypes'] = None  # import ctypes: ImportError\n")
    machine.ok("secrets", "set", SCOPE, "api.token", "-", input=CANARY, env=KEYS)
    done = machine.run("secrets", "run", SCOPE, "--", sys.executable, "-c",
                       "import os; print(os.environ['API_TOKEN'] == " + repr(CANARY) + ")",
                       env={**KEYS, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert done.stderr.startswith("warning: could not make this process undumpable (ModuleNotFoundError)")
    assert CANARY not in done.stderr and MASTER not in done.stderr
