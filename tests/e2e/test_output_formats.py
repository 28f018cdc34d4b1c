"""What the docs promise about output formats: one timestamp format everywhere (RFC 3339, UTC, `Z`), the install
advice of a missing KMS extra, and the progress bar of `secrets rotate` on a terminal. The API's timestamps:
tests/e2e/api/test_timestamps.py."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sprongus.domain.errors import ConfigError
from sprongus.domain.times import utc_iso
from tests.e2e.conftest import SCOPE, Vault

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
LOOKS_LIKE_A_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d\S*")
ROOT = Path(__file__).resolve().parents[2]


def times_in(document: Any) -> list[str]:
    """Every string of a JSON document that looks like an instant."""
    if isinstance(document, dict):
        return [t for value in document.values() for t in times_in(value)]
    if isinstance(document, list):
        return [t for value in document for t in times_in(value)]
    return [document] if isinstance(document, str) and LOOKS_LIKE_A_TIME.match(document) else []


def assert_rfc3339(found: list[str], at_least: int) -> None:
    assert len(found) >= at_least, found
    wrong = [t for t in found if not RFC3339_UTC.match(t)]
    assert not wrong, f"not RFC 3339 UTC with Z: {wrong}"


def test_utc_iso_is_rfc3339_with_z_for_any_offset() -> None:
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert utc_iso(moment) == "2026-03-01T12:00:00.000000Z"
    assert utc_iso(moment.astimezone(timezone(timedelta(hours=2)))) == "2026-03-01T12:00:00.000000Z"
    assert utc_iso(datetime(2026, 3, 1, 12, 0)) == "2026-03-01T12:00:00.000000Z"  # naive: taken as UTC


def test_every_timestamp_of_the_cli_json_and_tables_is_rfc3339_utc(vault: Vault, tmp_path: Path) -> None:
    vault.set("notion.api_token", "tok-1", SCOPE, "--meta", "provider=notion")
    vault.set("other", "tok-2")
    vault.ok("secrets", "rotate", SCOPE, "other")
    created = vault.ok("tokens", "create", "--subject", "alice", "--scope", "secrets:read", "--ttl", "1h")

    documents = [json.loads(vault.ok(*args).stdout) for args in (
        ("secrets", "get", SCOPE, "notion.api_token", "--json"),
        ("secrets", "get", SCOPE, "other", "--json"),
        ("secrets", "list", SCOPE, "--json", "--meta"),
        ("secrets", "export", SCOPE),
        ("secrets", "export", SCOPE, "--bundle"),
        ("tokens", "list", "--json"),
    )]
    # createdAt, updatedAt (x2 records, list, export: 8), lastRotatedAt (3), bundle createdAt, token createdAt and
    # expiresAt.
    assert_rfc3339([t for d in documents for t in times_in(d)], at_least=14)

    tables = "\n".join(vault.ok(*args).stdout for args in (
        ("secrets", "get", SCOPE, "other"), ("secrets", "list", SCOPE), ("tokens", "list")))
    assert_rfc3339(LOOKS_LIKE_A_TIME.findall(tables + created.stderr), at_least=7)


def test_a_missing_kms_extra_names_the_install_command_the_docs_give(monkeypatch: pytest.MonkeyPatch) -> None:
    from sprongus.entrypoints.kms import KmsOptions, kms_provider

    monkeypatch.delitem(sys.modules, "sprongus.entrypoints.kms_clients.vault", raising=False)
    monkeypatch.setitem(sys.modules, "hvac", None)  # an import of hvac now fails, as without the extra
    with pytest.raises(ConfigError) as caught:
        kms_provider("vault://127.0.0.1:8200/transit/keys/k", KmsOptions(endpoint="http://127.0.0.1:8200"))

    message = str(caught.value)
    assert message == ("SPRONGUS_KEY_PROVIDER: the vault provider needs the vault extra: `pip install '.[vault]'` in "
                       "a sprongus checkout, or `pip install 'dist/sprongus-0.1.0-py3-none-any.whl[vault]'` for a "
                       "built wheel (hvac is missing)")
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert message.replace("vault", "gcp").replace("(hvac", "(google.cloud") in deploy
    assert "pip install 'sprongus[" not in deploy + (ROOT / "docs" / "providers.md").read_text(encoding="utf-8")


@pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")
def test_rotate_of_a_scope_shows_a_progress_bar_on_a_terminal(vault: Vault) -> None:
    for n in range(3):
        vault.set(f"k{n}", "v")
    env = {**os.environ, "SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(vault.home), "SPRONGUS_KEY_PROVIDER": "file",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(["sprongus", "secrets", "rotate", SCOPE], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=secondary, timeout=60, check=False)
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal is closed: everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0 and done.stdout == f"rotated 3 secrets in {SCOPE}\n".encode()
    assert re.search(rb"rotating\s+\[#+\]\s+100%", shown), shown  # click's bar, full, not a bare counter
    assert b"rotating: 3" not in shown
