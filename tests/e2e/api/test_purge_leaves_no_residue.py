"""A purged version is gone from vault.db's bytes, on any SQLite build: upstream's default (and the SQLite Python
bundles on macOS and Windows) leaves a deleted row in a free page of the file, where with the master key it still
opened. Such a build is played here by turning secure_delete off on every new connection before sprongus' own
settings run."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest

from tests.e2e.api.conftest import ADMIN, READ, REVEAL, WRITE, ApiClient
from tests.harness import CANARY

PATH = "/v1/secrets/project/p1/a"


def test_a_purged_version_leaves_no_sealed_bytes_in_the_file(make_api: Callable[..., ApiClient],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    connect = sqlite3.connect

    def without_secure_delete(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = 0")
        return conn
    monkeypatch.setattr(sqlite3, "connect", without_secure_delete)
    api = make_api(sqlite=True)
    admin = api.token("alice", (READ, WRITE, REVEAL, ADMIN))
    api.put(PATH, CANARY)
    api.put(PATH, "v2")
    with closing(connect(api.home / "vault.db")) as conn:
        sealed = conn.execute("SELECT ciphertext, dek_wrapped, nonce FROM secret_version WHERE version = 1").fetchone()
    assert api.call("DELETE", PATH + "?purge=true", admin).get_json() == {"destroyedVersions": [2, 1]}
    api.close()  # closes the vault: SQLite checkpoints its WAL into the file
    disk = (api.home / "vault.db").read_bytes()
    for field in sealed:
        stored = field if isinstance(field, bytes) else str(field).encode()
        assert stored not in disk and base64.b64decode(stored) not in disk
