"""Where `sprongus login` keeps a token and `sprongus logout` forgets it: the OS keychain (an in-memory keyring
backend here), else the 0600 token file; one token per API, with or without /v1."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from sprongus.entrypoints.cli.login import forget_tokens, keep_token, stored_tokens
from sprongus.entrypoints.cli.remote import FROM_ENV, FROM_LOGIN, remote_token, store_file_token
from sprongus.entrypoints.config import Settings
from tests.unit.keyring_fake import InMemoryKeyring

API = "http://127.0.0.1:8000"
TOKEN, OTHER = "spr_" + "a" * 43, "spr_" + "b" * 43


def settings(home: Path, **extra: str) -> Settings:
    return Settings.from_mapping({"SPRONGUS_HOME": str(home), "SPRONGUS_API_URL": API, **extra})


@pytest.fixture
def keychain() -> Iterator[InMemoryKeyring]:
    before, backend = keyring.get_keyring(), InMemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(before)


@pytest.fixture
def no_keychain() -> Iterator[None]:
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(before)


def test_the_keychain_keeps_the_token_and_logout_forgets_it(keychain: InMemoryKeyring, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = settings(tmp_path)
    where = keep_token(config, API + "/v1/", TOKEN)

    assert where == "the OS keychain" and capsys.readouterr().err == ""
    assert keychain.items == {("sprongus", f"api-token:{API}"): TOKEN}
    assert stored_tokens(config, API) == [TOKEN]
    assert remote_token(config, API) == (TOKEN, FROM_LOGIN)
    assert not config.api_token_file.exists()

    forget_tokens(config, API + "/v1")
    forget_tokens(config, API)  # twice: nothing left is no error

    assert keychain.items == {} and stored_tokens(config, API) == []


def test_without_a_keychain_the_0600_file_keeps_one_token_per_api(no_keychain: None, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = settings(tmp_path)
    keep_token(config, API, TOKEN)
    keep_token(config, "http://other:8000", OTHER)

    assert "warning: no OS keychain is available" in capsys.readouterr().err
    assert stat.S_IMODE(config.api_token_file.stat().st_mode) == 0o600
    assert stored_tokens(config, API + "/v1") == [TOKEN]

    forget_tokens(config, API)

    assert stored_tokens(config, API) == [] and stored_tokens(config, "http://other:8000") == [OTHER]
    assert stat.S_IMODE(config.api_token_file.stat().st_mode) == 0o600


def test_logout_forgets_the_token_in_both_places(keychain: InMemoryKeyring, tmp_path: Path) -> None:
    config = settings(tmp_path)
    keep_token(config, API, TOKEN)
    store_file_token(config.api_token_file, API, OTHER)  # kept on a day the keychain was away

    assert stored_tokens(config, API) == [TOKEN, OTHER]
    forget_tokens(config, API)
    assert stored_tokens(config, API) == []


def test_sprongus_token_comes_first(no_keychain: None, tmp_path: Path) -> None:
    config = settings(tmp_path, SPRONGUS_TOKEN=OTHER, SPRONGUS_OIDC_TOKEN_FILE=str(tmp_path / "missing"))
    keep_token(config, API, TOKEN)

    assert remote_token(config, API) == (OTHER, FROM_ENV)  # the workload file is not even read
