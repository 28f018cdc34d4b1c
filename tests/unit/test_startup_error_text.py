"""A driver or SDK failing while the container starts is named by its class, never by its text: a library's text
may carry what it read (an AWS credential_process's stderr, which can name a password)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.container import build_container

CANARY = "Canary-Proc-Pw-4b1c"


def test_an_sdks_failure_at_start_up_is_named_by_its_class_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    pytest.importorskip("boto3")
    helper = tmp_path / "helper.sh"
    helper.write_text(f"#!/bin/sh\necho 'login failed for ops with password {CANARY}' >&2\nexit 1\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = eu-west-1\ncredential_process = {helper}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = Settings.from_mapping({
        "SPRONGUS_ENV": "dev", "SPRONGUS_HOME": str(tmp_path / "home"),
        "SPRONGUS_KEY_PROVIDER": "aws://arn:aws:kms:eu-west-1:123456789012:key/abcd-1234?endpoint=http://127.0.0.1:9"})
    with pytest.raises(ConfigError) as caught:
        build_container(settings)
    message = str(caught.value)
    assert message.startswith("cannot start ") and message.endswith("Error"), message
    assert CANARY not in message and "password" not in message
