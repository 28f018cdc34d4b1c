"""Text that anyone who may write a scope chose (meta), or that an API sent, reaches a person's terminal as text:
its escape sequences are shown, not obeyed. Before, `secrets list --meta` on a terminal printed a co-writer's OSC
(a window title; OSC 52 writes the clipboard in some terminals) and cursor moves that redrew the line above."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprongus.entrypoints.cli.auth import _describe
from sprongus.entrypoints.cli.output import table
from tests.e2e.conftest import SCOPE, Machine, run_on_terminal
from tests.harness import CANARY
from tests.unit.client_fake import FakeApi, Reply

HOSTILE = "ops\x1b]0;pwned\x07\x1b[1A\x1b[2Kall good\r\u202e"


@pytest.mark.parametrize("args", [["secrets", "list", SCOPE, "--meta"], ["secrets", "get", SCOPE, "db.password"],
                                  ["secrets", "get", SCOPE, "db.password", "--reveal", "--yes"]])
def test_meta_with_escape_sequences_is_shown_not_obeyed_on_a_terminal(machine: Machine, args: list[str]) -> None:
    machine.ok("secrets", "set", SCOPE, "db.password", "-", "--meta", f"owner={HOSTILE}", input=CANARY + "\n")
    code, screen = run_on_terminal(machine, args, [], env=machine.env(extra={"NO_COLOR": "1"}))
    assert code == 0, screen
    assert b"\x1b" not in screen and b"\x07" not in screen and "\u202e".encode() not in screen, screen
    if "--reveal" in args:  # on a terminal, the value alone, as it is
        assert screen.strip() == CANARY.encode(), screen
    else:
        assert b"owner=ops\\x1b]0;pwned\\x07\\x1b[1A\\x1b[2Kall good\\r\\u202e" in screen, screen
        assert CANARY.encode() not in screen


def test_an_api_answer_is_shown_as_text_in_tables_and_whoami() -> None:
    shown = table(["subject", "scopes"], [[HOSTILE, "secrets:read"]])
    assert "\x1b" not in shown and "\\x1b]0;pwned" in shown
    assert shown.splitlines()[1].startswith("ops\\x1b]0;pwned\\x07")  # widths count the escapes as shown
    me = {"subject": HOSTILE, "kind": "user", "trust": "\x1b[31mred", "scopes": ["secrets:read"], "projects": [],
          "keyPrefix": "", "tokenId": "tok_1", "expiresAt": "\x1b]52;c;ZXZpbA==\x07", "authTime": None}
    described = _describe(me, "SPRONGUS_TOKEN")
    assert "\x1b" not in described and "\x07" not in described and "\\x1b]52;c;" in described


def test_an_import_dry_runs_names_from_a_hostile_api_are_shown_not_obeyed(machine: Machine, tmp_path: Path) -> None:
    evil = {"added": [{"scope": "project:web", "keyName": "k" + HOSTILE}], "updated": [],
            "removed": [{"scope": "project:web\x1b]52;c;ZXZpbA==\x07", "keyName": "x"}]}
    source = tmp_path / "a.env"
    source.write_text("K=v\n")
    with FakeApi() as api:
        api.always("POST", "/v1/secrets:import", Reply(200, {"changes": evil, "dryRun": True}))
        env = machine.env(extra={"SPRONGUS_API_URL": api.url, "SPRONGUS_TOKEN": "spr_" + "t" * 43,
                                 "SPRONGUS_REMOTE": "1", "NO_COLOR": "1"})
        code, screen = run_on_terminal(machine, ["secrets", "import", "--file", str(source), "--scope",
                                                 "project:web", "--allow-plaintext", "--dry-run"], [], env=env)
    assert code == 0, screen
    assert b"\x1b" not in screen and b"\x07" not in screen, screen
    assert b"+ project:web kops\\x1b]0;pwned" in screen and b"- project:web\\x1b]52;c;ZXZpbA==\\x07 x" in screen
