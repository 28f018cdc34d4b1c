"""`secrets run --remote` cannot be hijacked through a key name either: the keys come from the API (real gunicorn,
Postgres, Redis, OpenBao), the rules are the runner's. A project member stores hook keys with their own token;
another member runs the project's secrets and is refused (exit 2, the key named, no value) before anything is
revealed or started. The local twin is tests/e2e/test_cli_run_hijack.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Machine
from tests.e2e.gunicorn.conftest import REVEAL_LIMIT, Stack
from tests.e2e.run_hijack import HOOK_KEYS, assert_refused, bash_env_script, hook_items, hook_value, run_argv
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn and a bao binary")

DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


class Project:
    """A project with a writer (who plants keys) and a runner (who runs `secrets run --remote`)."""

    def __init__(self, stack: Stack, directory: Path) -> None:
        self.stack = stack
        self.directory = directory
        name = stack.unique("runproj")
        self.scope = f"project:{name}"
        self.writer, self.runner = stack.tokens_for(
            (stack.unique("writer"), ("secrets:read", "secrets:write"), (name,)),
            (stack.unique("runner"), ("secrets:read", "secrets:reveal"), (name,)))

    def plant(self, *args: str, input: str | None = None) -> None:
        proc = self.stack.cli(self.writer, *args, input=input)
        assert proc.returncode == 0, proc.stderr

    def run(self, *args: str, **env: str) -> tuple[int, str, str]:
        proc = self.stack.machine.run(*args, env=self.stack.remote_env(self.runner, **env))
        return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def hooks(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(stack, tmp_path_factory.mktemp("remote-hooks"))
    project.plant("secrets", "import", "--file", hook_items(project.directory, project.scope), "--allow-plaintext")
    return project


@pytest.mark.parametrize(("key", "variable"), HOOK_KEYS, ids=[variable for _, variable in HOOK_KEYS])
def test_a_key_that_maps_to_a_hook_is_refused_remotely(hooks: Project, tmp_path: Path, key: str,
                                                       variable: str) -> None:
    marker = tmp_path / "ran"

    refused = hooks.stack.machine.run(*run_argv(hooks.scope, key, marker),
                                      env=hooks.stack.remote_env(hooks.runner))

    line = assert_refused(refused, marker, key, f"${variable}", f"--allow-env {variable}")
    assert line == (f"error: key: {key} maps to ${variable}, a loader, shell or interpreter hook; "
                    f"refused unless --allow-env {variable}")


def test_refused_runs_reveal_nothing_so_the_reveal_limit_is_untouched(hooks: Project, tmp_path: Path) -> None:
    # More refused runs than the runner's reveal limit allows reveals: had any of them revealed a value, the
    # allowed run below would be rate limited (exit 6).
    for _ in range(REVEAL_LIMIT + 1):
        assert_refused(hooks.stack.machine.run(*run_argv(hooks.scope, "RUBYOPT", tmp_path / "ran"),
                                               env=hooks.stack.remote_env(hooks.runner)), tmp_path / "ran")
    dump = tmp_path / "env.json"

    code, _, stderr = hooks.run("secrets", "run", hooks.scope, "--prefix", "RUBYOPT", "--allow-env", "RUBYOPT",
                                "--", sys.executable, "-c", DUMP, str(dump))

    assert code == 0, stderr
    assert json.loads(dump.read_text())["RUBYOPT"] == hook_value("RUBYOPT")


def test_a_bash_env_hook_planted_remotely_never_runs(stack: Stack, tmp_path: Path) -> None:
    project = Project(stack, tmp_path)
    script, marker = bash_env_script(tmp_path)
    project.plant("secrets", "set", project.scope, "BASH_ENV", "-", input=str(script))

    refused = project.stack.machine.run("secrets", "run", project.scope, "--", "bash", "-c", "true",
                                        env=stack.remote_env(project.runner))

    assert_refused(refused, marker, "BASH_ENV", "--allow-env BASH_ENV")
    assert str(script) not in refused.stderr


def test_a_variable_already_set_is_not_replaced_remotely_without_override(stack: Stack, tmp_path: Path) -> None:
    project = Project(stack, tmp_path)
    project.plant("secrets", "set", project.scope, "deploy.target", "-", input=CANARY)
    marker, dump = tmp_path / "ran", tmp_path / "env.json"
    mine = {"DEPLOY_TARGET": "staging"}

    refused = stack.machine.run(*run_argv(project.scope, "", marker), env=stack.remote_env(project.runner, **mine))
    line = assert_refused(refused, marker, "deploy.target", "$DEPLOY_TARGET", "--override")
    assert "staging" not in line

    code, _, stderr = project.run("secrets", "run", project.scope, "--override", "--", sys.executable, "-c", DUMP,
                                  str(dump), **mine)
    assert code == 0, stderr
    assert json.loads(dump.read_text())["DEPLOY_TARGET"] == CANARY


def test_remote_and_local_refusals_read_the_same(hooks: Project, tmp_path: Path) -> None:
    local = Machine(tmp_path / "local")
    local.ok("secrets", "import", "--file", hook_items(tmp_path, hooks.scope), "--allow-plaintext")
    marker = tmp_path / "ran"

    remote = hooks.stack.machine.run(*run_argv(hooks.scope, "node-options", marker),
                                     env=hooks.stack.remote_env(hooks.runner))
    here = local.run(*run_argv(hooks.scope, "node-options", marker))

    assert assert_refused(remote, marker) == assert_refused(here, marker)
