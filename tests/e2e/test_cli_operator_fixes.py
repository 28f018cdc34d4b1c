"""Operator-facing CLI fixes, in-process: token states, prod's key providers, import's mode flags, empty stdin,
`secrets run` without `--`, and KMS URI messages. Each test failed on the code before its fix."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from dependency_injector import providers

from sprongus.adapters.memory import ManualClock
from sprongus.entrypoints.cli.state import CliState
from sprongus.entrypoints.config import Settings
from tests.e2e.conftest import SCOPE, Vault, one_error_line, write_file
from tests.harness import CANARY

# 6. tokens list: an expired token is `expired`, not `active` ---------------------------------------------------


def _tokens_later(vault: Vault, days: float, *args: str) -> tuple[int, str]:
    """`tokens list` run `days` from now (the container's clock moved, as time would)."""
    container = vault.container()
    clock = ManualClock(container.clock().now() + timedelta(days=days))
    container.clock.override(providers.Object(clock))
    result = vault("tokens", "list", *args, state=CliState(container=container))
    return result.exit_code, result.stdout


def test_tokens_list_shows_expired_revoked_and_active_tokens(vault: Vault) -> None:
    short = vault.ok("tokens", "create", "--subject", "short", "--scope", "secrets:read", "--ttl", "1h")
    vault.ok("tokens", "create", "--subject", "long", "--scope", "secrets:read", "--ttl", "30d")
    gone = vault.ok("tokens", "create", "--subject", "gone", "--scope", "secrets:read", "--ttl", "1h")
    gone_id = gone.stderr.split()[1]
    vault.ok("tokens", "revoke", gone_id)

    code, table = _tokens_later(vault, 1)
    json_code, text = _tokens_later(vault, 1, "--json")
    states = {item["subject"]: (item["state"], item["revoked"]) for item in json.loads(text)}

    assert (code, json_code) == (0, 0)
    rows = {line.split()[1]: line.split()[-1] for line in table.splitlines()[1:]}
    assert rows == {"short": "expired", "long": "active", "gone": "revoked"}  # revoked wins over expired
    assert states == {"short": ("expired", False), "long": ("active", False), "gone": ("revoked", True)}
    assert short.stdout.strip() not in table + text  # the token itself is never listed


def test_tokens_list_right_now_shows_active_tokens(vault: Vault) -> None:
    vault.ok("tokens", "create", "--subject", "alice", "--scope", "secrets:read", "--ttl", "1h")

    assert [item["state"] for item in json.loads(vault.ok("tokens", "list", "--json").stdout)] == ["active"]


# 7. prod refuses local key providers unless SPRONGUS_ALLOW_LOCAL_KEYS=1 ---------------------------------------


def _prod(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"SPRONGUS_ENV": "prod", "SPRONGUS_DATABASE_URL": f"sqlite:///{tmp_path / 'vault.db'}",
            "SPRONGUS_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379", "SPRONGUS_KEY_FILE": str(tmp_path / "mk"),
            **extra}


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    vault = Vault(tmp_path / "home")
    result = vault(*args, state=CliState(settings=Settings.from_mapping(env)))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("provider", ["file", "keychain"])
def test_prod_refuses_file_and_keychain_keys_without_allow_local_keys(tmp_path: Path, provider: str) -> None:
    code, _, stderr = _run(tmp_path, _prod(tmp_path, SPRONGUS_KEY_PROVIDER=provider), "keys", "status")

    assert code == 2
    line = one_error_line(stderr, naming="SPRONGUS_KEY_PROVIDER")
    assert "SPRONGUS_ALLOW_LOCAL_KEYS" in line and provider in line
    assert not (tmp_path / "mk").exists()  # refused before any key was made


@pytest.mark.parametrize("provider", ["env", "memory"])
def test_prod_refuses_env_and_memory_keys_even_with_allow_local_keys(tmp_path: Path, provider: str) -> None:
    env = _prod(tmp_path, SPRONGUS_KEY_PROVIDER=provider, SPRONGUS_ALLOW_LOCAL_KEYS="1",
                SPRONGUS_MASTER_KEYS="k1:" + "A" * 43 + "=")
    code, _, stderr = _run(tmp_path, env, "keys", "status")

    assert code == 2
    line = one_error_line(stderr, naming="SPRONGUS_KEY_PROVIDER")
    assert "SPRONGUS_ALLOW_LOCAL_KEYS" in line


def test_prod_takes_the_file_provider_with_allow_local_keys(tmp_path: Path) -> None:
    env = _prod(tmp_path, SPRONGUS_KEY_PROVIDER="file", SPRONGUS_ALLOW_LOCAL_KEYS="1")
    code, stdout, stderr = _run(tmp_path, env, "keys", "status", "--json")

    assert code == 0, stderr
    assert json.loads(stdout)["provider"] == "file"


def test_prod_keeps_a_retired_local_provider_for_decryption(tmp_path: Path) -> None:
    # Retired: it only unwraps what is still on it while rotate-master moves the data keys onto the KMS.
    from sprongus.entrypoints.profiles import container_config

    env = _prod(tmp_path, SPRONGUS_KEY_PROVIDER="vault://127.0.0.1:8200/transit/keys/k",
                SPRONGUS_KEY_PROVIDERS_RETIRED="file")
    config = container_config(Settings.from_mapping(env))

    assert (config["keys"]["backend"], config["keys"]["retired"]) == ("vault", ["file"])


# 13. import --merge --replace is refused --------------------------------------------------------------------


def test_import_refuses_merge_and_replace_together_and_writes_nothing(seeded: Vault, tmp_path: Path) -> None:
    path = write_file(tmp_path, "in.env", f"NEW={CANARY}\n")
    before = seeded.names()

    for flags in (["--merge", "--replace"], ["--replace", "--merge"]):
        result = seeded("secrets", "import", "--file", path, "--scope", SCOPE, "--allow-plaintext", *flags)
        assert result.exit_code == 2
        line = one_error_line(result.stderr)
        assert "--merge" in line and "--replace" in line
        assert CANARY not in result.stdout + result.stderr
    assert seeded.names() == before


def test_import_replace_alone_still_replaces(seeded: Vault, tmp_path: Path) -> None:
    path = write_file(tmp_path, "in.env", "A=new\n")

    seeded.ok("secrets", "import", "--file", path, "--scope", SCOPE, "--allow-plaintext", "--replace")

    assert seeded.names() == ["A"]


# 14. an empty stdin is stored, with a warning ----------------------------------------------------------------


def test_set_from_an_empty_stdin_warns_and_stores_the_empty_value(vault: Vault) -> None:
    piped = vault.ok("secrets", "set", SCOPE, "piped", input=b"")
    dashed = vault.ok("secrets", "set", SCOPE, "dashed", "-", input=b"")
    newline = vault.ok("secrets", "set", SCOPE, "newline", "-", input=b"\n")

    for result in (piped, dashed):
        assert "warning: the value is empty (stdin was empty)" in result.stderr
    assert "warning" not in newline.stderr  # an explicit empty line is a deliberate empty value
    assert vault.reveal("piped") == vault.reveal("dashed") == vault.reveal("newline") == b""


# 15. secrets run without `--` --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["python3", "-c", "print(1)"], ["ls", "-lh"], ["env", "--null"]])
def test_run_without_dashes_says_to_put_them_before_the_command(seeded: Vault, command: list[str]) -> None:
    result = seeded("secrets", "run", SCOPE, *command)

    assert result.exit_code == 2
    line = one_error_line(result.stderr, naming="put -- before")
    assert "sprongus secrets run SCOPE [OPTIONS] -- COMMAND" in line
    assert "Usage:" not in result.stderr


def test_run_typo_in_its_own_option_keeps_clicks_suggestion(seeded: Vault) -> None:
    result = seeded("secrets", "run", SCOPE, "--overide", "--", "true")

    assert result.exit_code == 2
    assert "Did you mean '--override'?" in result.stderr
    assert "put -- before" not in result.stderr


def test_run_help_shows_the_dashes_and_with_them_the_command_runs(seeded: Vault) -> None:
    result = seeded("secrets", "run", SCOPE, "--", sys.executable, "-c", "import sys; sys.exit(3)")

    assert "SCOPE -- COMMAND [ARG]..." in seeded.ok("secrets", "run", "--help").stdout
    assert result.exit_code == 3  # the command's own exit code: it ran


# 16. KMS URI messages and `keys status` without credentials ------------------------------------------------


def _kms(tmp_path: Path, provider: str) -> tuple[int, str]:
    env = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path / "home"), "SPRONGUS_KEY_PROVIDER": provider}
    code, _, stderr = _run(tmp_path, env, "keys", "status")
    return code, stderr


@pytest.mark.parametrize(("provider", "form"), [
    ("aws://", "aws://arn:aws:kms:REGION:ACCOUNT:key/ID or aws://alias/NAME"),
    ("gcp://", "gcp://projects/P/locations/L/keyRings/R/cryptoKeys/K"),
    ("azure://", "azure://VAULT.vault.azure.net/keys/NAME[/VERSION]"),
    ("vault://", "vault://HOST:PORT/transit/keys/NAME"),
])
def test_a_bare_kms_scheme_shows_its_vendors_uri_form(tmp_path: Path, provider: str, form: str) -> None:
    code, stderr = _kms(tmp_path, provider)

    assert code == 2
    line = one_error_line(stderr, naming="SPRONGUS_KEY_PROVIDER")
    assert form in line
    assert "is not a KMS URI" not in line


@pytest.fixture
def no_gcp_extra(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if the gcp extra were not installed: importing its SDK fails."""
    for name in [n for n in sys.modules if n.startswith(("google.cloud.kms", "sprongus.entrypoints.kms_clients.gcp"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "google.cloud.kms", None)
    yield


def test_a_bad_gcp_uri_is_reported_before_the_missing_extra(tmp_path: Path, no_gcp_extra: None) -> None:
    bad_code, bad = _kms(tmp_path, "gcp://bad")
    good_code, good = _kms(tmp_path, "gcp://projects/p/locations/l/keyRings/r/cryptoKeys/k")

    assert (bad_code, good_code) == (2, 2)
    assert "gcp://projects/P/locations/L/keyRings/R/cryptoKeys/K" in one_error_line(bad)
    assert "extra" in one_error_line(good, naming="SPRONGUS_KEY_PROVIDER")


def test_keys_status_with_an_aws_key_and_no_credentials_fails_in_one_line(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boto3")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    # No instance metadata lookup (a link-local address), no credentials file: the chain ends at once.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))

    code, stderr = _kms(tmp_path, "aws://arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")

    assert code == 2
    line = one_error_line(stderr, naming="SPRONGUS_KEY_PROVIDER")
    assert "no usable AWS credentials" in line
