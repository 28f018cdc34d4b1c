"""`sprongus secrets rotate|run`, `keys status|rotate-master` and `db upgrade` in-process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sprongus.adapters.keys_file import FileKeyStore
from sprongus.entrypoints.cli import cli
from sprongus.entrypoints.cli.state import CliState
from tests.e2e.conftest import SCOPE, Vault, one_error_line, stored_rows
from tests.harness import CANARY, numbered

# rotate ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def three(vault: Vault) -> Vault:
    for key in ("notion.api_token", "notion.workspace", "openai.key"):
        vault.set(key, f"value of {key}")
    vault.set("notion.api_token", "other scope", "project:p2")
    return vault


def versions(vault: Vault, scope: str = SCOPE) -> dict[str, int]:
    doc = json.loads(vault.ok("secrets", "list", scope, "--json").stdout)
    return {item["keyName"]: item["version"] for item in doc["items"]}


def test_rotate_one_key_re_encrypts_it_as_a_new_version(three: Vault) -> None:
    before = stored_rows(three.db)["openai.key"]

    result = three.ok("secrets", "rotate", SCOPE, "openai.key")

    assert result.stdout == f"rotated 1 secret in {SCOPE}\n"
    after = stored_rows(three.db)["openai.key"]
    assert after[0] != before[0] and after[1] != before[1]  # new ciphertext and nonce
    assert versions(three) == {"notion.api_token": 1, "notion.workspace": 1, "openai.key": 2}
    assert three.record("openai.key")["lastRotatedAt"] is not None
    assert three.record("notion.api_token")["lastRotatedAt"] is None
    assert three.reveal("openai.key") == b"value of openai.key"


def test_rotate_a_prefix(three: Vault) -> None:
    result = three.ok("secrets", "rotate", SCOPE, "--prefix", "notion.")

    assert result.stdout == f"rotated 2 secrets in {SCOPE}\n"
    assert versions(three) == {"notion.api_token": 2, "notion.workspace": 2, "openai.key": 1}
    assert versions(three, "project:p2") == {"notion.api_token": 1}


def test_rotate_a_whole_scope(three: Vault) -> None:
    result = three.ok("secrets", "rotate", SCOPE)

    assert result.stdout == f"rotated 3 secrets in {SCOPE}\n"
    assert versions(three) == {"notion.api_token": 2, "notion.workspace": 2, "openai.key": 2}
    assert versions(three, "project:p2") == {"notion.api_token": 1}
    assert [three.reveal(k) for k in ("notion.workspace", "openai.key")] == [
        b"value of notion.workspace", b"value of openai.key"]


def test_rotate_refuses_a_key_with_a_prefix_and_a_missing_key(three: Vault) -> None:
    both = three("secrets", "rotate", SCOPE, "openai.key", "--prefix", "notion.")
    missing = three("secrets", "rotate", SCOPE, "nope")

    assert both.exit_code == 2
    one_error_line(both.stderr, naming="prefix")
    assert missing.exit_code == 3
    one_error_line(missing.stderr, naming="not found")
    assert versions(three) == {"notion.api_token": 1, "notion.workspace": 1, "openai.key": 1}


# run ------------------------------------------------------------------------------------------------------------

DUMP_ENV = ("import json, os, sys; "
            "json.dump({k: v for k, v in os.environ.items() if k.isupper()}, open(sys.argv[1], 'w'))")


def test_run_exposes_secrets_as_environment_variables(three: Vault, tmp_path: Path) -> None:
    three.set("my-app.db_url", "postgres://x")
    dump = tmp_path / "env.json"

    result = three("secrets", "run", SCOPE, "--", sys.executable, "-c", DUMP_ENV, str(dump))

    assert result.exit_code == 0, result.stderr
    env = json.loads(dump.read_text())
    assert {k: env.get(k) for k in ("NOTION_API_TOKEN", "NOTION_WORKSPACE", "OPENAI_KEY", "MY_APP_DB_URL")} == {
        "NOTION_API_TOKEN": "value of notion.api_token", "NOTION_WORKSPACE": "value of notion.workspace",
        "OPENAI_KEY": "value of openai.key", "MY_APP_DB_URL": "postgres://x"}
    assert "PATH" in env  # the caller's environment is kept
    assert "value of" not in result.stdout + result.stderr


def test_run_with_a_prefix_exposes_only_those(three: Vault, tmp_path: Path) -> None:
    dump = tmp_path / "env.json"

    three.ok("secrets", "run", SCOPE, "--prefix", "notion.", "--", sys.executable, "-c", DUMP_ENV, str(dump))

    env = json.loads(dump.read_text())
    assert "NOTION_API_TOKEN" in env
    assert "OPENAI_KEY" not in env


def test_run_passes_the_command_exit_code_through(three: Vault) -> None:
    result = three("secrets", "run", SCOPE, "--", sys.executable, "-c", "import sys; sys.exit(42)")

    assert result.exit_code == 42


def test_a_name_clash_fails_before_the_command_starts(vault: Vault, tmp_path: Path) -> None:
    vault.set("a.b", CANARY)
    vault.set("a-b", CANARY)
    marker = tmp_path / "ran"

    result = vault("secrets", "run", SCOPE, "--", sys.executable, "-c",
                   "import sys; open(sys.argv[1], 'w').write('ran')", str(marker))

    assert result.exit_code == 2
    line = one_error_line(result.stderr, naming="A_B")
    assert "a.b" in line and "a-b" in line
    assert not marker.exists()
    assert CANARY not in result.stdout + result.stderr


def test_run_without_a_runnable_command_exits_2(three: Vault) -> None:
    missing = three("secrets", "run", SCOPE, "--")
    not_found = three("secrets", "run", SCOPE, "--", "/nonexistent/tool")

    assert missing.exit_code == 2
    assert not_found.exit_code == 2
    one_error_line(not_found.stderr, naming="command")


# keys -----------------------------------------------------------------------------------------------------------


def test_keys_status_counts_secrets_per_master_key(three: Vault) -> None:
    table = numbered(three.ok("keys", "status").stdout)

    assert table.splitlines()[:3] == [f"provider:    file ({three.key_file})", "current key: file:v1",
                                      "hmac key:    file:h1"]
    assert table.splitlines()[4].split() == ["file:v1", "4", "current"]
    assert numbered(three.status()) == {"provider": "file", "location": str(three.key_file),
                                        "currentKeyId": "file:v1", "hmacKeyId": "file:h1",
                                        "secretsByMasterKey": {"file:v1": 4}, "vaultKeys": {"file:v1": "current"}}


def test_keys_status_of_an_empty_vault(vault: Vault) -> None:
    assert "no secrets yet" in vault.ok("keys", "status").stdout
    assert vault.status()["secretsByMasterKey"] == {}


def test_rotate_master_creates_a_new_key_and_rewraps_everything(three: Vault) -> None:
    before = stored_rows(three.db)

    first = three.ok("keys", "rotate-master")

    assert "new master key file:v2" in numbered(first.stderr)
    assert numbered(first.stdout) == "re-wrapped 4 secrets onto file:v2\n"
    assert numbered(three.status()["secretsByMasterKey"]) == {"file:v2": 4}
    after = stored_rows(three.db)
    assert all(after[k][:2] == before[k][:2] for k in before)  # values untouched: same ciphertext and nonce
    assert versions(three) == {"notion.api_token": 1, "notion.workspace": 1, "openai.key": 1}
    assert three.reveal("openai.key") == b"value of openai.key"

    second = three.ok("keys", "rotate-master")

    assert "new master key file:v3" in numbered(second.stderr)
    assert numbered(second.stdout) == "re-wrapped 4 secrets onto file:v3\n"
    status = numbered(three.status())
    assert (status["currentKeyId"], status["secretsByMasterKey"]) == ("file:v3", {"file:v3": 4})
    assert status["vaultKeys"] == {"file:v1": "opens", "file:v2": "opens", "file:v3": "current"}


def test_rotate_master_resumes_when_some_secrets_are_on_an_old_key(three: Vault) -> None:
    # An interrupted rotation: the new key exists and newer writes use it, older rows still sit on v1.
    FileKeyStore(three.key_file).add_master_key()
    three.set("fresh", "new")
    assert numbered(three.status()["secretsByMasterKey"]) == {"file:v1": 4, "file:v2": 1}

    result = three.ok("keys", "rotate-master")

    assert "4 secrets not on file:v2 yet" in numbered(result.stderr)
    assert "new master key" not in result.stderr
    assert numbered(result.stdout) == "re-wrapped 4 secrets onto file:v2\n"
    assert numbered(three.status()["secretsByMasterKey"]) == {"file:v2": 5}
    assert three.reveal("notion.workspace") == b"value of notion.workspace"


# db -------------------------------------------------------------------------------------------------------------


def test_db_upgrade_applies_the_migrations_then_says_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `db upgrade` reads its settings from the environment (it needs the database only, never the keys).
    monkeypatch.chdir(tmp_path)
    env = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path / "home"), "SPRONGUS_DATABASE_URL": None,
           "SPRONGUS_KEY_PROVIDER": "file"}
    runner = CliRunner()

    first = runner.invoke(cli, ["db", "upgrade"], obj=CliState(), env=env)
    second = runner.invoke(cli, ["db", "upgrade"], obj=CliState(), env=env)

    expected = sorted(p.stem for p in (Path(__file__).parents[2] / "migrations" / "sqlite").glob("[0-9]*.py"))
    assert (first.exit_code, first.stdout) == (0, f"applied: {', '.join(expected)}\n")
    assert (second.exit_code, second.stdout) == (0, "schema is current\n")
    vault = Vault(tmp_path / "home")
    vault.set("k", "after upgrade")
    assert vault.reveal("k") == b"after upgrade"


def test_db_upgrade_on_the_in_memory_profile_has_nothing_to_do(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["db", "upgrade"], obj=CliState(),
                                env={"SPRONGUS_ENV": "test", "SPRONGUS_DATABASE_URL": None})

    assert (result.exit_code, result.stdout) == (0, "in-memory storage: nothing to migrate\n")


def test_keys_verify_passes_then_names_a_rotten_row_with_exit_7(three: Vault) -> None:
    from tests.e2e.conftest import tamper_ciphertext

    clean = three.ok("keys", "verify", "--json")
    assert json.loads(clean.stdout)["ok"] is True
    key = json.loads(three.ok("secrets", "list", SCOPE, "--json").stdout)["items"][0]["keyName"]
    tamper_ciphertext(three.db, key)

    result = three("keys", "verify")
    assert result.exit_code == 7
    assert f"{SCOPE} {key}: " in result.stdout and "PROBLEMS FOUND" in result.stderr
    assert CANARY not in result.stdout + result.stderr
