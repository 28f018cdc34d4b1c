"""CLI start-up stays light: `--help` and a local `secrets get` never import web frameworks or cloud SDKs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from sprongus.entrypoints.cli.root import main
sys.argv = ["sprongus", *json.loads(sys.argv[1])]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps([code, sorted(name for name, module in sys.modules.items() if module)]), file=sys.stderr)
"""
NEVER = {"flask", "flask_smorest", "marshmallow", "google", "azure", "boto3", "botocore", "hvac"}


def _loaded(args: list[str], home: Path, stdin: str = "") -> set[str]:
    """The top-level packages the command imported."""
    return {name.split(".")[0] for name in _modules(args, home, stdin)}


def _modules(args: list[str], home: Path, stdin: str = "") -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}
    env.update(SPRONGUS_HOME=str(home), SPRONGUS_KEY_PROVIDER="file")
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60, check=True)
    code, modules = json.loads(done.stderr.strip().splitlines()[-1])
    assert code == 0, done.stderr  # the command ran to its end: what it did not load, it really did not need
    return set(modules)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("startup")
    _loaded(["secrets", "set", "project:p1", "k", "-"], home, stdin="v\n")
    return home


def test_help_loads_neither_storage_nor_crypto(home: Path) -> None:
    loaded = _loaded(["--help"], home)
    assert not loaded & (NEVER | {"peewee", "playhouse", "psycopg", "cryptography", "dependency_injector", "limits",
                                  "asyncio", "sqlite3"})


@pytest.mark.parametrize("args", [["secrets", "get", "project:p1", "k"],
                                  ["secrets", "get", "project:p1", "k", "--reveal", "--yes"]])
def test_local_get_loads_no_web_framework_cloud_sdk_or_postgres_driver(home: Path, args: list[str]) -> None:
    loaded = _loaded(args, home)
    assert "peewee" in loaded  # the probe really ran the command against the SQLite vault
    assert not loaded & (NEVER | {"psycopg", "psycopg2", "limits", "keyring", "werkzeug", "pydantic_settings", "yaml",
                                  "pydantic", "asyncio",  # dependency-injector's asyncio is deferred (lean_imports)
                                  "socket", "calendar"})  # and peewee's socket and calendar
    # The vault is current: its schema is checked with one SELECT, without playhouse's migration runner.
    assert "playhouse" not in loaded


def test_a_new_vault_migrates_without_the_postgres_drivers(tmp_path: Path) -> None:
    loaded = _loaded(["secrets", "set", "project:p1", "k", "-"], tmp_path, stdin="v\n")
    assert "playhouse" in loaded  # the first use ran the migrations
    assert not loaded & (NEVER | {"psycopg", "psycopg2"})


# What a masked `get` has no use for: the other use cases load when a command first asks for them (their modules
# define dataclasses, each ~4 million instructions, ~1 ms, to create), and --help reads no settings.
OTHER_USE_CASES = {"sprongus.service." + name for name in ("transfer", "rotation", "batch_reveal", "history",
                                                            "federation", "tokens", "trusts", "reveal_tokens",
                                                            "bundles", "import_plan", "audit_reading")}


# What the API and the rarer commands need, loaded when first used: the API's stores (Storage.api_stores),
# the rarer use cases' answers (domain/reports.py, `keys status`'s too), history's records, the trail's events as
# readers get them and its walk, an import's seal jobs, the history commands and a thread pool.
NOT_FOR_A_GET = {"sprongus.domain.reports", "sprongus.domain.history", "sprongus.domain.api_token",
                 "sprongus.domain.trust", "sprongus.ports.tokens", "sprongus.ports.identity",
                 "sprongus.adapters.peewee.tokens", "sprongus.adapters.peewee.identity", "sprongus.domain.audit_verify",
                 "sprongus.domain.audit_rows", "sprongus.domain.import_item",
                 "sprongus.entrypoints.cli.secrets_history", "concurrent.futures"}


@pytest.mark.parametrize("args", [["secrets", "get", "project:p1", "k"],
                                  ["secrets", "get", "project:p1", "k", "--reveal", "--yes"]])
def test_a_get_loads_only_the_secrets_use_case(home: Path, args: list[str]) -> None:
    modules = _modules(args, home)
    assert "sprongus.service.local_api" in modules
    assert not modules & OTHER_USE_CASES
    assert not modules & NOT_FOR_A_GET


def test_help_lists_the_commands_without_loading_them_or_openssls_hashlib(home: Path) -> None:
    modules = _modules(["--help"], home)
    commands = {"sprongus.entrypoints.cli." + name for name in ("secrets", "secrets_basic", "keys", "tokens", "auth",
                                                                 "db", "serve", "completion", "audit")}
    assert not modules & commands
    assert "_hashlib" not in modules  # hmac, for SecretValue's comparison, loads when it first compares


def test_secrets_help_lists_its_lazy_commands_without_loading_them(home: Path) -> None:
    modules = _modules(["secrets", "--help"], home)
    assert "sprongus.entrypoints.cli.secrets_basic" in modules  # the everyday commands are the group's own
    assert not modules & {"sprongus.entrypoints.cli." + name for name in ("secrets_history", "secrets_transfer",
                                                                          "secrets_ops", "secrets_inject")}


def test_help_reads_no_settings(home: Path) -> None:
    modules = _modules(["--help"], home)
    assert "sprongus.entrypoints.env_flags" in modules  # the log level was read
    assert "sprongus.entrypoints.config" not in modules


@pytest.mark.parametrize(("args", "use_case"), [(["secrets", "history", "project:p1", "k"], "history"),
                                                (["secrets", "export", "project:p1"], "transfer")])
def test_another_command_loads_its_use_case_when_it_runs(home: Path, args: list[str], use_case: str) -> None:
    assert f"sprongus.service.{use_case}" in _modules(args, home)


@pytest.mark.parametrize(("args", "module"), [(["tokens", "list"], "sprongus.adapters.peewee.tokens"),
                                              (["audit", "verify"], "sprongus.domain.audit_verify"),
                                              (["audit", "list"], "sprongus.domain.audit_rows"),
                                              (["keys", "status"], "sprongus.domain.reports"),
                                              (["secrets", "history", "project:p1", "k"],
                                               "sprongus.entrypoints.cli.secrets_history")])
def test_a_command_that_needs_a_deferred_module_loads_it(home: Path, args: list[str], module: str) -> None:
    assert module in _modules(args, home)
