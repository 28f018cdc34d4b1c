"""A vault on a local key never loads a cloud SDK: `sprongus` commands must not pay for google-cloud-kms or boto3."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SDKS = ("google.cloud", "google.api_core", "grpc", "boto3", "botocore")

SCRIPT = textwrap.dedent("""
    import base64, json, os, sys
    from sprongus.domain.principal import Principal
    from sprongus.domain.scope import Scope
    from sprongus.domain.values import SecretValue
    from sprongus.entrypoints.config import Settings
    from sprongus.entrypoints.container import build_container

    def loaded():
        return sorted(m for m in sys.modules if any(m == s or m.startswith(s + ".") for s in SDKS))

    SDKS = json.loads(sys.argv[1])
    key = base64.b64encode(os.urandom(32)).decode()
    vault = build_container(Settings.from_mapping({
        "SPRONGUS_ENV": "dev", "SPRONGUS_HOME": sys.argv[2], "SPRONGUS_KEY_PROVIDER": "env",
        "SPRONGUS_MASTER_KEYS": f"k1:{key}"}))
    owner, scope = Principal.local_owner("owner"), Scope.system()
    vault.secret_ops().set(owner, scope, "db.password", SecretValue("s3cret"))
    assert vault.secret_ops().get(owner, scope, "db.password", reveal=True).value.reveal() == "s3cret"
    before = loaded()
    import sprongus.entrypoints.kms_clients.gcp, sprongus.entrypoints.kms_clients.aws  # the check can see them
    print(json.dumps({"env": before, "kms": loaded()}))
""")


def test_building_and_using_an_env_key_vault_imports_no_cloud_sdk(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(SDKS), str(tmp_path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert modules["env"] == []
    assert {"grpc", "boto3", "google.cloud.kms"} <= set(modules["kms"])
