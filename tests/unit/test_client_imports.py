"""`import sprongus.client` loads nothing an application did not ask for: no web framework, database driver, CLI
toolkit, dependency-injection container, JWT library or cloud SDK. Checked in a fresh interpreter, where
sys.modules shows every module the import ran, however indirectly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

FORBIDDEN = ("flask", "werkzeug", "flask_smorest", "marshmallow", "peewee", "playhouse", "dependency_injector",
             "click", "jwt", "cryptography", "keyring", "psycopg", "redis", "limits", "requests", "dotenv",
             "platformdirs", "filelock", "google", "azure", "boto3", "botocore", "hvac", "grpc")


def _loaded_after(statement: str) -> list[str]:
    probe = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout)
    return modules


@pytest.mark.parametrize("statement", [
    "import sprongus.client",
    "from sprongus.client import Client, NotFound; Client('http://127.0.0.1:9', 'spr_x')",
    "import sprongus.client.flask",  # the helper itself needs Flask for type checking only
])
def test_the_client_loads_no_framework_driver_jwt_library_or_sdk(statement: str) -> None:
    modules = _loaded_after(statement)
    assert "sprongus.client" in modules
    assert [m for m in modules if m.split(".")[0] in FORBIDDEN] == []
    assert [m for m in modules if m.startswith(("sprongus.entrypoints", "sprongus.service.secrets"))] == []


def test_the_probe_sees_an_import() -> None:
    """The check can fail: importing the server's app does load Flask."""
    modules = _loaded_after("import sprongus.entrypoints.api")
    assert "flask" in modules
