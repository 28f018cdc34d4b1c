"""Settings, SPRONGUS_MASTER_KEYS parsing, profiles and the container (docs/design.md#configuration)."""

from __future__ import annotations

import base64
import os
import stat
import traceback
from pathlib import Path

import pytest

from sprongus.adapters.keys_local import parse_key_list
from sprongus.domain.errors import ConfigError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints import key_material as km
from sprongus.entrypoints.config import Settings, env_file_values
from sprongus.entrypoints.container import build_container
from tests.harness import (
    CANARY,
    is_new_key_id,
    owner,
    use_cases,
)

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
SHORT = base64.b64encode(b"S" * 16).decode()
LONG = base64.b64encode(b"L" * 33).decode()
MATERIAL = (KEY_A, KEY_B, SHORT, LONG, "QUJD", "bm90LWEta2V5")
PROD = {"SPRONGUS_ENV": "prod", "SPRONGUS_DATABASE_URL": "postgresql://db.internal/sprongus",
        "SPRONGUS_RATE_LIMIT_STORAGE": "redis://cache.internal:6379",
        "SPRONGUS_KEY_PROVIDER": "gcp://projects/p/locations/l/keyRings/r/cryptoKeys/k"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SPRONGUS_"):
            monkeypatch.delenv(name)


def test_master_keys_are_parsed_in_order_first_is_current() -> None:
    assert parse_key_list(f"k2:{KEY_B} , k1:{KEY_A}", "SPRONGUS_MASTER_KEYS") == [("k2", b"B" * 32), ("k1", b"A" * 32)]
    material = km.env_keys(f"k2:{KEY_B},k1:{KEY_A}", f"h1:{KEY_A}")
    assert material.master.current_key_id() == "env:k2" and material.hmac is not None
    assert material.hmac.current_key_id() == "env:h1"


@pytest.mark.parametrize(("setting", "entry"), [
    (KEY_A, 1), (f"k1 {KEY_A}", 1), (f"k1:{SHORT}", 1), (f"k1:{LONG}", 1), ("k1:QUJD", 1), ("k1:bm90LWEta2V5", 1),
    (f"k1:{KEY_A[:-1]}", 1), (f"k1:{KEY_A}!", 1), (f"bad id:{KEY_A}", 1), (f":{KEY_A}", 1), (f"{'x' * 65}:{KEY_A}", 1),
    (f"k1:{KEY_A},k2", 2), (f"k1:{KEY_A},,k2:{KEY_B}", 2), (f"k1:{KEY_A},", 2), (",", 1),
    (f"k1:{KEY_A},k2:{KEY_B},k3:{SHORT}", 3), (f"k1:{KEY_A},k1:{KEY_B}", 2), (f"k1:{KEY_A},k2:{KEY_B},k2:{KEY_A}", 3),
])
def test_malformed_master_keys_name_the_setting_and_entry_never_the_key(setting: str, entry: int) -> None:
    with pytest.raises(ConfigError) as info:
        km.env_keys(setting, None)
    message = str(info.value)
    assert message.startswith("SPRONGUS_MASTER_KEYS: ") and f"entry {entry} " in message
    rendered = "".join(traceback.format_exception(info.value))
    for material in MATERIAL:
        assert material[:8] not in rendered


def test_missing_or_malformed_key_settings_are_named() -> None:
    for missing in (None, ""):
        with pytest.raises(ConfigError, match=r"^SPRONGUS_MASTER_KEYS: required"):
            km.env_keys(missing, None)
    with pytest.raises(ConfigError, match=r"^SPRONGUS_HMAC_KEYS: entry 1 ") as info:
        km.env_keys(f"k1:{KEY_A}", f"h1:{SHORT}")
    assert SHORT[:8] not in str(info.value)


def test_settings_defaults_and_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_mapping({"SPRONGUS_MASTER_KEYS": f"k1:{KEY_A}"})
    assert (settings.env, settings.batch_size, settings.keychain_timeout) == ("dev", 500, 5.0)
    assert settings.rate_limits["reveal"] == "10/minute" and settings.master_keys == f"k1:{KEY_A}"
    assert KEY_A not in repr(settings)


@pytest.mark.parametrize("profile", ["production", "PROD", "Test", "staging"])
def test_an_unknown_profile_is_refused(profile: str) -> None:
    with pytest.raises(ConfigError, match=r"^SPRONGUS_ENV: must be one of test, dev, prod$"):
        Settings.from_mapping({"SPRONGUS_ENV": profile})


@pytest.mark.parametrize(("name", "raw"), [("SPRONGUS_KEYCHAIN_TIMEOUT", "soon"), ("SPRONGUS_KEYCHAIN_TIMEOUT", "0"),
                                           ("SPRONGUS_BATCH_SIZE", "nan"), ("SPRONGUS_REVEAL_MAX_AGE", "-1"),
                                           ("SPRONGUS_TOKEN_CACHE_TTL", "-1"), ("SPRONGUS_TOKEN_CACHE_TTL", "61"),
                                           ("SPRONGUS_TOKEN_CACHE_TTL", "1s")])
def test_bad_numbers_name_their_setting(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: must be"):
        Settings.from_mapping({name: raw})


def write_dotenv(path: Path, home: Path) -> Path:
    path.write_text(f"SPRONGUS_HOME={home}\nSPRONGUS_KEY_PROVIDER=file\nSPRONGUS_BATCH_SIZE=7\nUNRELATED_DOTENV_VAR=1\n"
                    "SPRONGUS_ENV=prod\nSPRONGUS_ENV_FILE=/elsewhere.env\nSPRONGUS_REMOTE=${NOT_INTERPOLATED}\n")
    return path


@pytest.mark.parametrize("profile", ["test", "dev", "prod"])
def test_a_dot_env_in_the_cwd_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str) -> None:
    write_dotenv(tmp_path / ".env", tmp_path / "home")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPRONGUS_ENV", profile)
    monkeypatch.delenv("SPRONGUS_ENV_FILE", raising=False)
    settings = Settings.from_env()
    assert (settings.home, settings.key_provider, settings.batch_size) == (None, None, 500)


def test_sprongus_env_file_is_read_and_the_real_environment_wins(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_dotenv(tmp_path / "sprongus.env", tmp_path / "home")
    settings = Settings.from_env({"SPRONGUS_ENV_FILE": str(path), "SPRONGUS_BATCH_SIZE": "9",
                                  "NOT_INTERPOLATED": "1"})
    assert (settings.env, settings.home, settings.key_provider) == ("dev", tmp_path / "home", "file")
    assert settings.batch_size == 9  # the environment wins over the file
    assert settings.remote is False  # no interpolation: the text "${NOT_INTERPOLATED}" is not "1"
    assert "UNRELATED_DOTENV_VAR" not in os.environ and "SPRONGUS_HOME" not in os.environ


def test_an_env_file_cannot_switch_the_profile_or_chain_another_file(tmp_path: Path) -> None:
    path = write_dotenv(tmp_path / "sprongus.env", tmp_path / "home")  # says SPRONGUS_ENV=prod
    settings = Settings.from_env({"SPRONGUS_ENV_FILE": str(path)})
    assert settings.env == "dev"
    assert set(env_file_values(str(path))) == {"SPRONGUS_HOME", "SPRONGUS_KEY_PROVIDER", "SPRONGUS_BATCH_SIZE",
                                               "SPRONGUS_REMOTE"}


@pytest.mark.parametrize("name", ["missing.env", "folder"])
def test_a_missing_or_unreadable_env_file_is_named(tmp_path: Path, name: str) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match=r"^SPRONGUS_ENV_FILE: the file cannot be read \(.+\)$") as info:
        Settings.from_env({"SPRONGUS_ENV_FILE": str(tmp_path / name)})
    assert name not in str(info.value)


def test_an_env_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.env"
    path.write_bytes(b"SPRONGUS_HOME=/caf\xe9\n")
    with pytest.raises(ConfigError, match=r"^SPRONGUS_ENV_FILE: the file must be UTF-8 text$"):
        Settings.from_env({"SPRONGUS_ENV_FILE": str(path)})


def test_the_test_profile_builds_in_memory_and_works_end_to_end() -> None:
    container = build_container(Settings.from_mapping({"SPRONGUS_ENV": "test"}))
    assert container.key_material().backend == "memory"
    service = use_cases(container)
    service.secrets.set(owner(), Scope.user("alice"), "notion.api_token", SecretValue(CANARY),
                        meta={"provider": "notion"})
    masked = service.secrets.get(owner(), Scope.user("alice"), "notion.api_token")
    assert masked.masked and is_new_key_id(masked.master_key_id, "memory:v1")
    assert service.secrets.get(owner(), Scope.user("alice"), "notion.api_token", reveal=True).value.reveal() == CANARY


def test_dev_with_the_file_provider_creates_the_key_once_and_tells_the_user(tmp_path: Path) -> None:
    settings = Settings.from_mapping({"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path / "home"),
                                      "SPRONGUS_KEY_PROVIDER": "file"})
    notices: list[str] = []
    first = build_container(settings, notice=notices.append)
    key_file = tmp_path / "home" / "master.key"
    assert not key_file.exists() and notices == []  # reads never make a key: the first write does
    scope = Scope.project("p1")
    first.secret_ops().set(owner(), scope, "db.password", SecretValue(CANARY))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(notices) == 1 and str(key_file) in notices[0]
    assert is_new_key_id(first.master_keys().current_key_id(), "file:v1")
    assert first.secret_ops().get(owner(), scope, "db.password", reveal=True).value.reveal() == CANARY

    second = build_container(settings, notice=notices.append)
    assert len(notices) == 1
    wrapped = first.master_keys().wrap(b"d" * 32, b"aad")
    assert second.master_keys().unwrap(wrapped.blob, wrapped.master_key_id, b"aad") == b"d" * 32


def test_dev_with_env_keys_uses_them_and_keeps_a_retired_provider_for_decryption(tmp_path: Path) -> None:
    env = {"SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path), "SPRONGUS_MASTER_KEYS": f"k1:{KEY_A}"}
    container = build_container(Settings.from_mapping(env))
    assert container.master_keys().current_key_id() == "env:k1"
    scope = Scope.system()
    container.secret_ops().set(owner(), scope, "OPENAI_API_KEY", SecretValue(CANARY))
    assert container.secret_ops().get(owner(), scope, "OPENAI_API_KEY", reveal=True).value.reveal() == CANARY
    old = container.master_keys().wrap(b"d" * 32, b"aad")

    switched = build_container(Settings.from_mapping(
        {**env, "SPRONGUS_KEY_PROVIDER": "file", "SPRONGUS_KEY_PROVIDERS_RETIRED": "env"}), notice=lambda _: None)
    assert is_new_key_id(switched.master_keys().current_key_id(), "file:v1")
    assert switched.master_keys().unwrap(old.blob, "env:k1", b"aad") == b"d" * 32


@pytest.mark.parametrize(("overrides", "setting"), [
    ({"SPRONGUS_KEY_PROVIDER": "", "SPRONGUS_MASTER_KEYS": f"k1:{KEY_A}"}, "SPRONGUS_KEY_PROVIDER"),
    ({"SPRONGUS_KEY_PROVIDER": "env", "SPRONGUS_MASTER_KEYS": f"k1:{KEY_A}"}, "SPRONGUS_KEY_PROVIDER"),
    ({"SPRONGUS_KEY_PROVIDER": "memory"}, "SPRONGUS_KEY_PROVIDER"),
    ({"SPRONGUS_KEY_PROVIDER": ""}, "SPRONGUS_KEY_PROVIDER"),
    ({"SPRONGUS_DATABASE_URL": "memory://"}, "SPRONGUS_DATABASE_URL"),
    ({"SPRONGUS_DATABASE_URL": ""}, "SPRONGUS_DATABASE_URL"),
    ({"SPRONGUS_RATE_LIMIT_STORAGE": "memory://"}, "SPRONGUS_RATE_LIMIT_STORAGE"),
])
def test_prod_refuses_unsafe_settings_at_build_naming_the_setting(overrides: dict[str, str], setting: str) -> None:
    settings = Settings.from_mapping({**PROD, **overrides})
    with pytest.raises(ConfigError) as info:
        build_container(settings)
    assert str(info.value).startswith(f"{setting}: ") and KEY_A not in str(info.value)


@pytest.mark.parametrize(("overrides", "setting"), [
    ({"SPRONGUS_KEY_PROVIDER": "bogus"}, "SPRONGUS_KEY_PROVIDER"),
    ({"SPRONGUS_KEY_PROVIDER": "kms://x"}, "SPRONGUS_KEY_PROVIDER"),
    ({"SPRONGUS_DATABASE_URL": "mysql://db/x"}, "SPRONGUS_DATABASE_URL"),
    ({"SPRONGUS_RATE_LIMIT_STORAGE": "memcached://m"}, "SPRONGUS_RATE_LIMIT_STORAGE"),
    ({"SPRONGUS_KEY_PROVIDER": "env", "SPRONGUS_MASTER_KEYS": f"k1:{SHORT}"}, "SPRONGUS_MASTER_KEYS"),
    ({"SPRONGUS_KEY_PROVIDER": "env"}, "SPRONGUS_MASTER_KEYS"),
])
def test_malformed_settings_fail_at_build_in_any_profile(overrides: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_container(Settings.from_mapping({"SPRONGUS_ENV": "test", **overrides}))
    assert str(info.value).startswith(f"{setting}: ") and SHORT[:8] not in str(info.value)


@pytest.mark.parametrize(("raw", "cached"), [(None, True), ("0.5", True), ("0", False)])
def test_the_token_cache_is_on_by_default_and_off_at_zero(raw: str | None, cached: bool) -> None:
    from sprongus.adapters.token_cache import CachingApiTokenStore
    from sprongus.entrypoints.container import build_container

    env = {"SPRONGUS_ENV": "test"} | ({} if raw is None else {"SPRONGUS_TOKEN_CACHE_TTL": raw})
    store = build_container(Settings.from_mapping(env)).api_token_store()
    assert isinstance(store, CachingApiTokenStore) is cached


@pytest.mark.parametrize(("provider", "explicit", "concurrency"), [
    (PROD["SPRONGUS_KEY_PROVIDER"], None, 24),  # Cloud KMS: Decrypt then Encrypt per re-wrap, two calls in a row
    ("aws://arn:aws:kms:us-east-1:111122223333:key/k", None, 16),
    ("azure://vault.vault.azure.net/keys/k", None, 16),
    ("vault://bao.internal:8200/transit/keys/k", None, 16),
    ("memory", None, 1), ("file", None, 1), ("keychain", None, 1),
    (PROD["SPRONGUS_KEY_PROVIDER"], "8", 8), ("aws://arn:aws:kms:us-east-1:111122223333:key/k", "40", 40),
    ("file", "4", 4),
])
def test_kms_concurrency_defaults_per_provider_and_an_explicit_setting_wins(provider: str, explicit: str | None,
                                                                             concurrency: int) -> None:
    from sprongus.entrypoints.profiles import container_config

    env = {"SPRONGUS_ENV": "test", "SPRONGUS_KEY_PROVIDER": provider}
    env |= {} if explicit is None else {"SPRONGUS_KMS_CONCURRENCY": explicit}
    assert container_config(Settings.from_mapping(env))["kms"]["concurrency"] == concurrency
