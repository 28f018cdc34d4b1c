"""`sprongus secrets export --bundle --all-versions` as real processes: the history moves to another vault
(passphrase bundle) under the same version numbers, `--all-versions` needs `--bundle`, and no value leaks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Machine
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain")


def test_all_versions_moves_the_history_to_another_vault(tmp_path: Path) -> None:
    source, target = Machine(tmp_path / "source"), Machine(tmp_path / "target")
    for n in (1, 2, 3):
        source.ok("secrets", "set", SCOPE, "k", "-", input=f"{CANARY}-{n}")
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    refused = source.run("secrets", "export", SCOPE, "--all-versions")
    assert refused.returncode == 2 and "all-versions" in refused.stderr
    out = tmp_path / "history.json"
    done = source.ok("secrets", "export", SCOPE, "--bundle", "--all-versions", "--passphrase-file", str(passphrase),
                     "--out", str(out))
    assert "exported 1 secret to" in done.stderr + done.stdout  # secrets, not versions
    text = out.read_text()
    doc = json.loads(text)
    assert CANARY not in text and doc["history"] is True and [i["version"] for i in doc["items"]] == [1, 2, 3]
    target.ok("secrets", "import", "--file", str(out), "--passphrase-file", str(passphrase))
    for n in (1, 2, 3):
        shown = target.ok("secrets", "get", SCOPE, "k", "--version", str(n), "--reveal", "--yes")
        assert shown.stdout == f"{CANARY}-{n}\n"
