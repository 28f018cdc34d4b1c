"""`secrets run` cannot be hijacked through a key name (real `sprongus` processes on a local vault).

Whoever may write a scope chooses its key names; whoever runs `secrets run` for it gets them as environment
variables. A key named BASH_ENV, LD_PRELOAD, PATH, NODE_OPTIONS, ... would run the writer's code as the runner,
and a key named like a variable the runner already set would silently replace it. Both are refused (exit 2, the
key named, never the value) before any value is revealed, unless the runner names them: --allow-env NAME,
--override. The same scenarios run through the API in gunicorn/test_run_hijack_remote.py.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine, one_error_line
from tests.e2e.run_hijack import HOOK_KEYS, assert_refused, bash_env_script, hook_items, hook_value, run_argv
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: bash and no OS keychain")


def reveals(machine: Machine) -> int:
    """Reveal audit rows so far: a refused run must not have revealed (decrypted) anything."""
    with closing(sqlite3.connect(machine.home / "vault.db")) as db:
        (count,) = db.execute("SELECT count(*) FROM audit_event WHERE action = 'reveal'").fetchone()
    return int(count)


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Machine:
    """A vault where a scope's writer stored one key of every denied family."""
    machine = Machine(tmp_path_factory.mktemp("hooks"))
    machine.ok("secrets", "import", "--file", hook_items(machine.root, SCOPE), "--allow-plaintext")
    return machine


@pytest.mark.parametrize(("key", "variable"), HOOK_KEYS, ids=[variable for _, variable in HOOK_KEYS])
def test_a_key_that_maps_to_a_hook_is_refused_before_anything_runs(hooks: Machine, tmp_path: Path, key: str,
                                                                   variable: str) -> None:
    marker = tmp_path / "ran"
    before = reveals(hooks)

    refused = hooks.run(*run_argv(SCOPE, key, marker))

    line = assert_refused(refused, marker, key, f"${variable}", f"--allow-env {variable}")
    assert line == (f"error: key: {key} maps to ${variable}, a loader, shell or interpreter hook; "
                    f"refused unless --allow-env {variable}")
    assert reveals(hooks) == before  # refused from the key names alone: no value was decrypted


def test_a_bash_env_hook_never_runs(machine: Machine, tmp_path: Path) -> None:
    script, marker = bash_env_script(tmp_path)
    machine.ok("secrets", "set", SCOPE, "BASH_ENV", "-", input=str(script))
    # The hook is real: bash sources BASH_ENV before running a non-interactive command.
    subprocess.run(["bash", "-c", "true"], env={"BASH_ENV": str(script)}, check=True)
    assert marker.exists()
    marker.unlink()

    refused = machine.run("secrets", "run", SCOPE, "--", "bash", "-c", "true")

    assert_refused(refused, marker, "BASH_ENV", "--allow-env BASH_ENV")
    assert str(script) not in refused.stderr
    # Named by the runner, it is passed on (and bash runs it): --allow-env is the one way in.
    machine.ok("secrets", "run", SCOPE, "--allow-env", "BASH_ENV", "--", "bash", "-c", "true")
    assert marker.read_text() == "hooked\n"


def test_an_allowed_hook_is_passed_and_path_also_needs_override(hooks: Machine, tmp_path: Path) -> None:
    dump = tmp_path / "env.json"
    script = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"

    hooks.ok("secrets", "run", SCOPE, "--prefix", "perl5lib", "--allow-env", "PERL5LIB", "--",
             sys.executable, "-c", script, str(dump))
    assert json.loads(dump.read_text())["PERL5LIB"] == hook_value("PERL5LIB")

    # PATH is set in every environment: allowing the name is not enough to replace it.
    marker = tmp_path / "ran"
    refused = hooks.run(*run_argv(SCOPE, "path", marker, "--allow-env", "PATH"))
    assert_refused(refused, marker, "path", "$PATH", "already set", "--override")
    hooks.ok("secrets", "run", SCOPE, "--prefix", "path", "--allow-env", "PATH", "--override", "--",
             sys.executable, "-c", script, str(dump))
    assert json.loads(dump.read_text())["PATH"] == hook_value("PATH")

    # --allow-env names one variable: another hook in the same run is still refused.
    both = hooks.run("secrets", "run", SCOPE, "--prefix", "p", "--allow-env", "PERL5LIB", "--",
                     sys.executable, "-c", script, str(tmp_path / "never"))
    assert_refused(both, tmp_path / "never", "pager", "$PAGER", "--allow-env PAGER")  # the first refused key


def test_a_variable_already_set_is_never_replaced_without_override(machine: Machine, tmp_path: Path) -> None:
    machine.ok("secrets", "set", SCOPE, "greeting", "-", input=CANARY)
    machine.ok("secrets", "set", SCOPE, "other", "-", input="other value")
    marker, dump = tmp_path / "ran", tmp_path / "env.json"
    mine = {"GREETING": "from the runner's environment"}
    before = reveals(machine)

    refused = machine.run(*run_argv(SCOPE, "", marker), env=mine)

    line = assert_refused(refused, marker, "greeting", "$GREETING", "--override")
    assert line == ("error: key: greeting maps to $GREETING, which is already set in the environment; "
                    "refused unless --override")
    assert "from the runner" not in refused.stderr
    assert reveals(machine) == before

    script = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    machine.ok("secrets", "run", SCOPE, "--override", "--", sys.executable, "-c", script, str(dump), env=mine)
    env = json.loads(dump.read_text())
    assert (env["GREETING"], env["OTHER"]) == (CANARY, "other value")


def test_a_missing_double_dash_gets_a_hint_and_the_help_shows_it(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, "k", "-", input=CANARY)

    missing = machine.run("secrets", "run", SCOPE, sys.executable, "-c", "pass")
    helped = machine.ok("secrets", "run", "--help")

    assert missing.returncode == 2
    one_error_line(missing.stderr, naming="put -- before it: sprongus secrets run SCOPE [OPTIONS] -- COMMAND")
    assert CANARY not in missing.stdout + missing.stderr
    assert "Usage: sprongus secrets run [OPTIONS] SCOPE -- COMMAND [ARG]..." in helped.stdout
    assert "--override" in helped.stdout and "--allow-env NAME" in helped.stdout
    # With `--`, the same command runs.
    machine.ok("secrets", "run", SCOPE, "--", sys.executable, "-c", "pass")


def test_a_clash_is_still_named_before_the_hook_rules(machine: Machine, tmp_path: Path) -> None:
    machine.ok("secrets", "set", SCOPE, "a.b", "-", input=CANARY)
    machine.ok("secrets", "set", SCOPE, "A_B", "-", input=CANARY)
    marker = tmp_path / "ran"

    refused = machine.run(*run_argv(SCOPE, "", marker))

    one_error_line(refused.stderr, naming="both map to $A_B")
    assert_refused(refused, marker, "A_B", "a.b")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_config_through_the_environment_never_runs(machine: Machine, tmp_path: Path) -> None:
    """git reads any setting from GIT_CONFIG_COUNT/KEY_n/VALUE_n; core.fsmonitor is a command it runs."""
    marker = tmp_path / "pwned"
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for key, value in (("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "core.fsmonitor"),
                       ("GIT_CONFIG_VALUE_0", f"touch {marker}; false")):
        machine.ok("secrets", "set", SCOPE, key, "-", input=value)

    refused = machine.run("secrets", "run", SCOPE, "--", "git", "-C", str(repo), "status", "--short")

    assert refused.returncode == 2 and not marker.exists()
    one_error_line(refused.stderr, naming="GIT_CONFIG_")


def test_a_value_no_environment_can_carry_is_refused_by_name(machine: Machine, tmp_path: Path) -> None:
    value_file = tmp_path / "nul"
    value_file.write_bytes(CANARY.encode() + b"\x00tail")
    machine.ok("secrets", "set", SCOPE, "with.nul", "--file", str(value_file))
    marker = tmp_path / "ran"

    refused = machine.run("secrets", "run", SCOPE, "--", sys.executable, "-c", TOUCH_MARKER, str(marker))

    assert refused.returncode == 2 and not marker.exists()
    line = one_error_line(refused.stderr, naming="with.nul")
    assert "NUL" in line and CANARY not in refused.stdout + refused.stderr


TOUCH_MARKER = "import sys; open(sys.argv[1], 'w').write('ran')"
