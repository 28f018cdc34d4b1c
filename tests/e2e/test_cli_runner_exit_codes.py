"""Every exit code (docs/design.md#cli-and-exit-codes) local mode can reach: one line on stderr, no value.

0 ok, 1 unexpected, 2 usage/invalid, 3 not found, 4 not allowed, 5 conflict, 6 rate limited, 7 integrity,
8 unavailable (try again).
Only through the API (remote mode, which lands later): 4 for a token without the scope or permission (local mode
is the vault's owner, so only a refused reveal confirmation gives 4 here), 5 for an If-Match/version mismatch and
an Idempotency-Key still running, and 6 (local mode has no rate limits: the test below proves it). Locally, 5 is
reached only by losing a write race, simulated with a trigger; 1 by an unexpected error or an unusable database; 8 by
a failing audit trail (and by any outage: tests/e2e/test_cli_outages.py, test_cli_disk_full.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from dependency_injector import providers

from sprongus.entrypoints.cli.state import CliState
from tests.e2e.conftest import SCOPE, Vault, add_trigger, one_error_line, tamper_ciphertext
from tests.harness import CANARY


@pytest.fixture
def stocked(vault: Vault) -> Vault:
    vault.set("k", CANARY)
    vault.set("other", CANARY + "-2")
    return vault


def test_0_ok(stocked: Vault) -> None:
    assert stocked("secrets", "get", SCOPE, "k").exit_code == 0


class _Broken:
    def __getattr__(self, name: str) -> Callable[..., object]:
        def fail(*_: object, **__: object) -> object:
            raise RuntimeError(f"boom with {CANARY}")

        return fail


def test_1_an_unexpected_error_is_one_line_without_traceback_or_detail(stocked: Vault) -> None:
    container = stocked.container()
    container.secret_ops.override(providers.Object(_Broken()))

    result = stocked("secrets", "get", SCOPE, "k", state=CliState(container=container))

    assert result.exit_code == 1
    line = one_error_line(result.stderr, naming="unexpected RuntimeError")
    assert "SPRONGUS_DEBUG=1" in line
    assert CANARY not in result.stdout + result.stderr


def test_8_a_failing_audit_trail_refuses_the_reveal(stocked: Vault) -> None:
    add_trigger(stocked.db, "audit_event", "disk full")

    result = stocked("secrets", "get", SCOPE, "k", "--reveal", "--yes")

    assert result.exit_code == 8  # was 1: an unavailable audit store is an outage, "try again" (issue 11)
    one_error_line(result.stderr, naming="audit")
    assert result.stdout == ""  # fail closed: no audit row, no plaintext


def test_1_an_unusable_database(vault: Vault) -> None:
    # A file that is not a database is no outage: trying again fails the same way, so not 8.
    vault.home.mkdir()
    vault.db.write_bytes(b"this is not a database")
    vault.db.chmod(0o600)  # private, so it gets as far as SQLite

    result = vault("secrets", "list", SCOPE, state=CliState(build=lambda *_: vault.container()))

    assert result.exit_code == 1
    one_error_line(result.stderr, naming="database")


@pytest.mark.parametrize(("args", "naming"), [
    (["secrets", "set", "project:", "k", "v"], "scope"),
    (["secrets", "set", "tenant:x", "k", "v"], "scope"),
    (["secrets", "get", "project:p1", "1key"], "key"),
    (["secrets", "set", "project:p1", "a..b", "v"], "key"),
    (["secrets", "set", "project:p1", "k" * 129, "v"], "key"),
    (["secrets", "set", "project:p1", "k", "v", "--meta", "nope"], "meta"),
    (["secrets", "set", "project:p1", "k", "--json", "{nope"], "json"),
    (["secrets", "set", "project:p1", "k", "--file", "/nonexistent/value"], "file"),
    (["secrets", "set", "project:p1", "k", "v", "--file", "/etc/hostname"], "value"),
    (["secrets", "list", "project:p1", "--prefix", "bad prefix"], "prefix"),
])
def test_2_invalid_input(stocked: Vault, args: list[str], naming: str) -> None:
    result = stocked(*args)

    assert result.exit_code == 2
    one_error_line(result.stderr, naming=naming)
    assert stocked.names() == ["k", "other"]


def test_2_oversized_value(stocked: Vault, tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 65537)

    result = stocked("secrets", "set", SCOPE, "big", "--file", str(path))

    assert result.exit_code == 2
    one_error_line(result.stderr, naming="value")


def test_2_a_bad_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CliState() builds its container from the environment, as the real CLI does: keep it inside tmp_path.
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("SPRONGUS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SPRONGUS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SPRONGUS_KEY_PROVIDER", "file")
    vault = Vault(tmp_path / "home")
    good = vault("secrets", "list", SCOPE, state=CliState())
    monkeypatch.setenv("SPRONGUS_ENV", "staging")
    bad = vault("secrets", "list", SCOPE, state=CliState())

    assert good.exit_code == 0
    assert bad.exit_code == 2
    one_error_line(bad.stderr, naming="SPRONGUS_ENV")


@pytest.mark.parametrize("args", [["secrets", "get", SCOPE, "nope"], ["secrets", "unset", SCOPE, "nope"],
                                  ["secrets", "rotate", SCOPE, "nope"],
                                  ["secrets", "get", SCOPE, "nope", "--reveal", "--yes"]])
def test_3_not_found(stocked: Vault, args: list[str]) -> None:
    result = stocked(*args)

    assert result.exit_code == 3
    one_error_line(result.stderr, naming="nope")


def test_4_reveal_not_confirmed(stocked: Vault) -> None:
    result = stocked("secrets", "get", SCOPE, "k", "--reveal")

    assert result.exit_code == 4
    one_error_line(result.stderr, naming="--yes")
    assert CANARY not in result.stdout + result.stderr


def test_5_a_lost_write_race(stocked: Vault) -> None:
    # Every insert loses to "another writer" (a constraint failure on each retry).
    add_trigger(stocked.db, "secret_kv", "UNIQUE constraint failed: secret_kv.key_name")

    result = stocked("secrets", "set", SCOPE, "new", "-", input=CANARY)

    assert result.exit_code == 5
    one_error_line(result.stderr, naming="concurrently")
    assert CANARY not in result.stderr


def test_6_is_never_returned_locally_because_the_owner_is_not_rate_limited(stocked: Vault) -> None:
    state = CliState(container=stocked.container())  # one process: rate limits would accumulate
    codes = {stocked("secrets", "get", SCOPE, "k", "--reveal", "--yes", state=state).exit_code for _ in range(15)}

    assert codes == {0}  # the API's default reveal limit is 10/minute


def test_7_tampered_ciphertext(stocked: Vault) -> None:
    tamper_ciphertext(stocked.db, "k")

    reveal = stocked("secrets", "get", SCOPE, "k", "--reveal", "--yes")
    rotate = stocked("secrets", "rotate", SCOPE, "k")

    assert (reveal.exit_code, rotate.exit_code) == (7, 7)
    one_error_line(reveal.stderr, naming="integrity check failed")
    assert reveal.stdout == ""
    assert stocked.reveal("other") == (CANARY + "-2").encode()  # the untouched row still opens


def test_7_another_installations_master_key(stocked: Vault, make_vault: Callable[..., Vault]) -> None:
    stranger = make_vault("stranger")
    stranger.set("x", "y")
    shutil.copy2(stranger.key_file, stocked.key_file)  # another key (with an id of its own)

    reveal = stocked("secrets", "get", SCOPE, "k", "--reveal", "--yes")
    rotate = stocked("secrets", "rotate", SCOPE)

    assert (reveal.exit_code, rotate.exit_code) == (7, 7)
    one_error_line(reveal.stderr, naming="the master key does not match this vault")
    assert CANARY not in reveal.stdout + reveal.stderr


def test_7_rotate_master_with_a_wrong_key_mints_no_new_version(
    stocked: Vault, make_vault: Callable[..., Vault],
) -> None:
    stranger = make_vault("stranger")
    stranger.set("x", "y")
    shutil.copy2(stranger.key_file, stocked.key_file)

    wrong_key = stranger.key_file.read_bytes()
    result = stocked("keys", "rotate-master")

    assert result.exit_code == 7
    one_error_line(result.stderr, naming="the master key does not match this vault")
    assert stocked.key_file.read_bytes() == wrong_key  # no v2 stranded over an unreadable vault


def test_7_bundle_export_refuses_a_rotten_row(stocked: Vault) -> None:
    tamper_ciphertext(stocked.db, "k")

    result = stocked("secrets", "export", SCOPE, "--bundle")

    assert result.exit_code == 7 and result.stdout == ""
    one_error_line(result.stderr, naming="checksum")
