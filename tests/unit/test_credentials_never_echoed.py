"""A credential in a setting is never repeated by the error that refuses the setting (domain/credentials.py): each
case below printed its canary before (a database password with a raw `@`, a token with a newline, a user name and
password in the API's, a KMS's or the identity provider's URL, a Redis password in the query string)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sprongus.adapters.rate_limit_limits import LimitsRateLimiter
from sprongus.client import Client
from sprongus.domain.credentials import one_userinfo, token_text, without_userinfo
from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.kms import KmsOptions, kms_provider

CANARY = "canary-cred-91b7"


def _refused(setting: str, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping(env)
    message = str(info.value)
    assert message.startswith(f"{setting}: ") and CANARY not in message
    return message


def test_a_token_loses_the_whitespace_around_it_and_is_refused_with_any_inside() -> None:
    assert token_text("SPRONGUS_TOKEN", f"  {CANARY}\r\n") == CANARY
    for bad in (f"{CANARY}\nX-Injected: 1", f"spr_{CANARY} more", f"{CANARY}\x00", f"{CANARY}\x1b[2J"):
        with pytest.raises(ConfigError, match=r"^SPRONGUS_TOKEN: a token has no spaces") as info:
            token_text("SPRONGUS_TOKEN", bad)
        assert CANARY not in str(info.value)
    assert Settings.from_mapping({"SPRONGUS_TOKEN": f"{CANARY}\n"}).api_token == CANARY
    assert Settings.from_mapping({"SPRONGUS_TOKEN": " \n"}).api_token is None
    _refused("SPRONGUS_TOKEN", {"SPRONGUS_TOKEN": f"{CANARY}\r\nmore"})


@pytest.mark.parametrize("setting", ["SPRONGUS_API_URL", "SPRONGUS_KMS_ENDPOINT", "SPRONGUS_OIDC_ISSUER"])
def test_a_url_that_takes_no_credentials_is_refused_with_a_user_name_or_password(setting: str) -> None:
    for url in (f"https://user:{CANARY}@host.example", f"https://{CANARY}@host.example:8200/v1"):
        assert "user name or password" in _refused(setting, {setting: url})
    assert getattr(Settings.from_mapping({setting: "https://host.example/path"}), setting.lower()[9:]) is not None
    with pytest.raises(ConfigError, match=f"^{setting}: not a URL$"):
        without_userinfo(setting, f"https://[{CANARY}")


def test_a_database_password_with_a_raw_at_sign_is_refused_before_the_driver_reads_it() -> None:
    url = f"postgresql://sprongus:p@{CANARY}@127.0.0.1:5432/sprongus"
    assert "%40" in _refused("SPRONGUS_DATABASE_URL", {"SPRONGUS_DATABASE_URL": url})
    encoded = f"postgresql://sprongus:p%40{CANARY}@127.0.0.1:5432/sprongus"
    assert one_userinfo("SPRONGUS_DATABASE_URL", encoded) == encoded


@pytest.mark.parametrize("url", [f"postgresql://sp_app:{CANARY}/rest@db.internal:5432/sprongus?hostaddr=127.0.0.1",
                                 f"postgresql://:{CANARY}/rest@db/sprongus", "postgresql://sp_app:1234/rest@db/x"])
def test_a_database_password_with_a_raw_slash_is_refused_before_libpq_quotes_it_as_a_port(url: str) -> None:
    """libpq ended the host at the `/`: the user name became the host, the password's first part the port, quoted
    in "invalid integer value ... for connection option "port"" at start-up and on every request's log line."""
    from sprongus.adapters.peewee.postgres import server_database

    with pytest.raises(ConfigError, match="%2F") as info:
        server_database(url, 5, 5)
    assert CANARY not in str(info.value) and "1234" not in str(info.value)


@pytest.mark.parametrize("url", ["postgresql://u:p%2Fq@h:5432,h2:5433/db", "postgresql://u@[::1]:5432,[::2]/db",
                                 "postgresql:///db?host=/cloudsql/project:region:instance", "postgresql://h/db",
                                 "postgresql://u:pa?ss@h/db", "postgresql://u:pa#ss@h/db", "postgresql://h:5432/my@db",
                                 "sqlite:////home/jdoe@corp.example.com/.local/share/sprongus/vault.db"])
def test_database_urls_libpq_reads_as_meant_are_accepted(url: str) -> None:
    from sprongus.adapters.peewee.postgres import server_database

    assert Settings.from_mapping({"SPRONGUS_DATABASE_URL": url}).database_url == url
    if url.startswith("postgresql"):
        server_database(url, 5, 5)  # builds the pool (no connection yet): nothing refused


@pytest.mark.parametrize("url", [f"https://deploy:{CANARY}/rest@secrets.example.com",
                                 f"https://deploy:{CANARY}?rest@secrets.example.com",
                                 f"https://deploy:{CANARY}#rest@secrets.example.com", f"https://host:{CANARY}/v1"])
def test_an_api_url_with_a_password_cut_short_by_a_slash_is_refused_without_repeating_it(url: str) -> None:
    """The host part ended at the `/`, `?` or `#`, before the `@`: the URL passed as one without credentials, and
    the remote CLI printed it, password included, in "cannot reach the API at ...". """
    from sprongus.entrypoints.cli.remote import checked_api_url

    with pytest.raises(ConfigError) as info:
        checked_api_url(url)
    assert CANARY not in str(info.value)


def test_a_kms_endpoint_with_credentials_in_the_provider_uri_is_refused_too() -> None:
    uri = f"azure://v.vault.azure.net/keys/master?endpoint=https://user:{CANARY}@127.0.0.1:1"
    with pytest.raises(ConfigError, match=r"^SPRONGUS_KMS_ENDPOINT: a user name or password") as info:
        kms_provider(uri, KmsOptions())
    assert CANARY not in str(info.value)


@pytest.mark.parametrize("uri", [f"redis://127.0.0.1:6379/0?password={CANARY}&socket_timeout=abc",
                                 f"redis://:{CANARY}@127.0.0.1:bad/0", f"redis://[{CANARY}/0"])
def test_a_redis_url_that_cannot_be_used_is_named_by_its_host_only(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"^SPRONGUS_RATE_LIMIT_STORAGE: cannot use ") as info:
        LimitsRateLimiter({"reveal": "10/minute"}, uri)
    assert CANARY not in str(info.value)


def test_a_vault_token_keeps_no_trailing_newline_and_one_with_a_newline_inside_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("hvac")
    uri = "vault://127.0.0.1:1/transit/keys/master"
    options = KmsOptions(endpoint="http://127.0.0.1:1")
    monkeypatch.setenv("VAULT_TOKEN", f"{CANARY}\n")
    provider = kms_provider(uri, options)
    assert provider._client.token == CANARY  # type: ignore[attr-defined]
    monkeypatch.setenv("VAULT_TOKEN", f"{CANARY}\nmore")
    with pytest.raises(ConfigError, match=r"^VAULT_TOKEN: a token has no spaces") as info:
        kms_provider(uri, options)
    assert CANARY not in str(info.value)


def test_the_sdk_strips_a_tokens_newline_and_refuses_one_inside_naming_where_it_came_from() -> None:
    client = Client.from_env({"SPRONGUS_API_URL": "http://127.0.0.1:1", "SPRONGUS_TOKEN": f"{CANARY}\n"})
    assert client._auth.bearer().reveal() == CANARY  # type: ignore[attr-defined]
    for make, setting in ((lambda: Client.from_env({"SPRONGUS_API_URL": "http://127.0.0.1:1",
                                                     "SPRONGUS_TOKEN": f"{CANARY}\nmore"}), "SPRONGUS_TOKEN"),
                          (lambda: Client("http://127.0.0.1:1", f"{CANARY}\r\nX: 1"), "token")):
        with pytest.raises(ConfigError, match=f"^{setting}: a token has no spaces") as info:
            make()
        assert CANARY not in str(info.value)


def test_a_vault_request_that_cannot_be_made_is_reported_by_its_kind_only() -> None:
    hvac = pytest.importorskip("hvac")
    from sprongus.adapters.kms_vault import VaultTransitMasterKeyProvider
    from sprongus.domain.errors import KeyProviderError

    # A client made without the builder's check: requests refuses the header by quoting it.
    provider = VaultTransitMasterKeyProvider(hvac.Client(url="http://127.0.0.1:1", token=f"{CANARY}\nmore"),
                                             "transit", "master")
    with pytest.raises(KeyProviderError, match=r"the request could not be made \(InvalidHeader\)$") as info:
        provider.current_key_id()
    assert CANARY not in str(info.value) and info.value.__cause__ is None and info.value.__suppress_context__


CLI_CASES = {
    "database password with a raw @": ({"SPRONGUS_DATABASE_URL": f"postgresql://sprongus:p@{CANARY}@127.0.0.1/db"},
                                      ["secrets", "list", "project:p1"]),
    "API URL with a password": ({"SPRONGUS_API_URL": f"http://user:{CANARY}@127.0.0.1:1", "SPRONGUS_TOKEN": "spr_x"},
                                ["secrets", "list", "--remote", "project:p1"]),
    "--api-url with a password": ({}, ["auth", "status", "--api-url", f"http://user:{CANARY}@127.0.0.1:1"]),
    "token with a newline inside": ({"SPRONGUS_API_URL": "http://127.0.0.1:1", "SPRONGUS_TOKEN": f"{CANARY}\nmore"},
                                    ["secrets", "list", "--remote", "project:p1"]),
    "KMS endpoint with a password": ({"SPRONGUS_KEY_PROVIDER": "azure://v.vault.azure.net/keys/master",
                                      "SPRONGUS_KMS_ENDPOINT": f"https://user:{CANARY}@127.0.0.1:1"},
                                     ["keys", "status"]),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_the_cli_refuses_each_as_a_configuration_error_without_the_credential(case: str, tmp_path: Path) -> None:
    extra, args = CLI_CASES[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}
    env.update({"SPRONGUS_HOME": str(tmp_path), "SPRONGUS_KEY_PROVIDER": "file", "SPRONGUS_DEBUG": "1", **extra})
    done = subprocess.run([sys.executable, "-m", "sprongus.entrypoints.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert CANARY not in done.stderr + done.stdout
