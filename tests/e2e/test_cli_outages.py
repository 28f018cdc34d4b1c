"""Exit 8, "try again": the CLI with a dependency that is down. A Postgres server that does not answer, the API in
--remote mode that cannot be reached, a failing audit store. A setting to fix (a database that does not exist) stays
exit 2, and a file that is not a database stays exit 1: neither is an outage."""

from __future__ import annotations

import socket
from pathlib import Path

from sprongus.entrypoints.cli.state import CliState
from sprongus.entrypoints.config import Settings
from tests.e2e.conftest import SCOPE, Vault, one_error_line
from tests.pg import HOST, PORT, SUPERUSER, require_postgres


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def on_postgres(tmp_path: Path, url: str) -> Vault:
    return Vault(tmp_path / "home", {"SPRONGUS_DATABASE_URL": url, "SPRONGUS_KEY_PROVIDER": "env",
                                     "SPRONGUS_MASTER_KEYS": "k1:" + "A" * 43 + "="})


def test_a_postgres_server_that_does_not_answer_is_exit_8(tmp_path: Path) -> None:
    vault = on_postgres(tmp_path, f"postgresql://postgres@127.0.0.1:{closed_port()}/sprongus")

    for args in (["secrets", "list", SCOPE], ["secrets", "set", SCOPE, "k", "-"], ["keys", "verify"]):
        result = vault(*args, input="v", state=CliState(build=lambda *_: vault.container()))
        assert result.exit_code == 8, (args, result.stderr)
        assert "Connection refused" in one_error_line(result.stderr, naming="database unavailable")


def test_a_postgres_database_that_does_not_exist_is_a_setting_to_fix(tmp_path: Path) -> None:
    require_postgres()
    vault = on_postgres(tmp_path, f"postgresql://{SUPERUSER}@{HOST}:{PORT}/sprongus_no_such_database")

    result = vault("secrets", "list", SCOPE, state=CliState(build=lambda *_: vault.container()))

    assert result.exit_code == 2, result.stderr
    one_error_line(result.stderr, naming="does not exist")


def test_the_api_out_of_reach_in_remote_mode_is_exit_8(tmp_path: Path) -> None:
    settings = Settings.from_mapping({"SPRONGUS_HOME": str(tmp_path / "home"), "SPRONGUS_REMOTE": "1",
                                      "SPRONGUS_API_URL": f"http://127.0.0.1:{closed_port()}",
                                      "SPRONGUS_TOKEN": "spr_" + "A" * 43})
    vault = Vault(tmp_path / "home")

    result = vault("secrets", "list", SCOPE, state=CliState(settings=settings))

    assert result.exit_code == 8, result.stderr
    one_error_line(result.stderr, naming="cannot reach the API")
