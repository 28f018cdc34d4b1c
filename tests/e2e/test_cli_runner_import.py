"""`sprongus secrets import` in-process: formats and python-dotenv rules, merge/replace, dry runs, atomicity."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Vault, one_error_line
from tests.e2e.conftest import write_file as write
from tests.harness import CANARY

DOTENV = """# a comment line
export API_TOKEN=tok-1
SINGLE='single $NOT_INTERPOLATED \\n'
DOUBLE="double\\nescaped \\"q\\""
MULTI="line one
line two"
EMPTY=
EMPTY_QUOTED=""
SPACED =   spaced value
INLINE=value # a comment
"""
# What python-dotenv makes of DOTENV (no interpolation: `$NOT_INTERPOLATED` stays literal).
DOTENV_VALUES = {"API_TOKEN": "tok-1", "SINGLE": "single $NOT_INTERPOLATED \\n", "DOUBLE": 'double\nescaped "q"',
                 "MULTI": "line one\nline two", "EMPTY": "", "EMPTY_QUOTED": "", "SPACED": "spaced value",
                 "INLINE": "value"}


# import: formats ------------------------------------------------------------------------------------------------


def test_import_dotenv_follows_python_dotenv_rules(vault: Vault, tmp_path: Path) -> None:
    result = vault.ok("secrets", "import", "--file", write(tmp_path, "prod.env", DOTENV), "--scope", SCOPE,
                      "--allow-plaintext")

    assert result.stdout == "imported: 8 added, 0 changed, 0 removed\n"
    assert vault.values() == DOTENV_VALUES


@pytest.mark.parametrize(("name", "content"), [
    ("vars.env", "A=1\nB=2\n"),
    (".env.local", "A=1\nB=2\n"),
    ("vars.txt", "A=1\nB=2\n"),  # not JSON: dotenv
    ("vars.json", '{"A": "1", "B": "2"}'),
    ("vars.txt.bak", '{"items": [{"key": "A", "value": "1"}, {"key": "B", "value": "2"}]}'),
])
def test_import_guesses_the_format(vault: Vault, tmp_path: Path, name: str, content: str) -> None:
    vault.ok("secrets", "import", "--file", write(tmp_path, name, content), "--scope", SCOPE, "--allow-plaintext")

    assert vault.values() == {"A": "1", "B": "2"}


@pytest.mark.parametrize(("name", "content", "format_"), [("looks.env", '{"A": "1"}', "json"),
                                                         ("looks.json", "A=1\n", "dotenv")])
def test_import_format_option_overrides_the_guess(vault: Vault, tmp_path: Path, name: str, content: str,
                                                  format_: str) -> None:
    path = write(tmp_path, name, content)

    vault.ok("secrets", "import", "--file", path, "--format", format_, "--scope", SCOPE, "--allow-plaintext")

    assert vault.values() == {"A": "1"}


def test_import_json_items_carry_their_own_scopes_and_meta(vault: Vault, tmp_path: Path) -> None:
    doc = {"items": [{"scope": SCOPE, "key": "notion.api_token", "value": "t1", "meta": {"provider": "notion"}},
                     {"scope": "user:alice", "key": "pat", "value": "t2"},
                     {"scope": "system", "key": "smtp.password", "value": "t3"}]}

    vault.ok("secrets", "import", "--file", write(tmp_path, "items.json", doc), "--allow-plaintext")

    assert vault.values() == {"notion.api_token": "t1"}
    assert vault.record("notion.api_token")["meta"] == {"provider": "notion"}
    assert vault.values("user:alice") == {"pat": "t2"}
    assert vault.values("system") == {"smtp.password": "t3"}


@pytest.mark.parametrize(("name", "content", "field"), [
    ("vars.env", "A=1\n", "scope"),
    ("vars.json", '{"A": "1"}', "scope"),
    ("vars.json", '{"A": "1",', "json"),  # a broken .json file is not read as an (empty) dotenv file
    ("vars.txt", '{"A": "1",', "json"),
    ("vars.json", '["A"]', "json"),
    ("vars.env", "A=1\nNO_EQUALS_SIGN\n", "line 2"),  # dotenv errors name the line, not an item
    ("vars.env", 'A=1\nB="unterminated\nC=3\n', "dotenv"),  # python-dotenv would skip the line silently
    ("vars.env", "A=1\n9LIVES=2\n", "line 2"),
])
def test_import_rejects_bad_files_naming_the_cause(vault: Vault, tmp_path: Path, name: str, content: str,
                                                   field: str) -> None:
    args = ["--scope", SCOPE] if field != "scope" else []
    result = vault("secrets", "import", "--file", write(tmp_path, name, content), "--allow-plaintext", *args)

    assert result.exit_code == 2
    one_error_line(result.stderr, naming=field)
    assert vault.names() == []


def test_replace_with_an_unparsable_dotenv_line_deletes_nothing(vault: Vault, tmp_path: Path) -> None:
    vault.set("A", "old")
    vault.set("B", "kept")

    result = vault("secrets", "import", "--file", write(tmp_path, "a.env", 'A=new\nB="broken\n'), "--scope", SCOPE,
                   "--allow-plaintext", "--replace")

    assert result.exit_code == 2
    one_error_line(result.stderr, naming="line 2")
    assert vault.values() == {"A": "old", "B": "kept"}


def test_import_of_an_unreadable_file_exits_2_naming_file(vault: Vault, tmp_path: Path) -> None:
    result = vault("secrets", "import", "--file", str(tmp_path / "missing.env"), "--scope", SCOPE,
                   "--allow-plaintext")

    assert result.exit_code == 2
    one_error_line(result.stderr, naming="file")


def test_plaintext_import_is_refused_without_allow_plaintext(vault: Vault, tmp_path: Path) -> None:
    for name, content in (("a.env", f"A={CANARY}\n"), ("a.json", {"A": CANARY})):
        result = vault("secrets", "import", "--file", write(tmp_path, name, content), "--scope", SCOPE)

        assert result.exit_code == 2
        one_error_line(result.stderr, naming="plaintext")
        assert CANARY not in result.stdout + result.stderr
    assert vault.names() == []


def test_one_bad_item_aborts_the_whole_import(vault: Vault, tmp_path: Path) -> None:
    vault.set("A", "old")
    bad_items = [
        ({"items": [{"key": "A", "value": "new"}, {"key": "1bad", "value": CANARY}]}, "items[1].key"),
        ({"items": [{"key": "A", "value": "new"}, {"key": "B", "value": "x" * 65537}]}, "items[1].value"),
        ({"items": [{"key": "A", "value": "new"}, {"key": "B", "value": "v", "meta": {"Bad": 1}}]}, "items[1].meta"),
        ({"items": [{"key": "A", "value": "new"}, {"scope": "nope", "key": "B", "value": "v"}]}, "items[1].scope"),
        ({"items": [{"key": "A", "value": "new"}, {"key": "A", "value": "again"}]}, "items[1].key"),
    ]
    for doc, field in bad_items:
        result = vault("secrets", "import", "--file", write(tmp_path, "bad.json", doc), "--scope", SCOPE,
                       "--allow-plaintext", "--replace")

        assert result.exit_code == 2, field
        one_error_line(result.stderr, naming=field)
        assert CANARY not in result.stderr
    assert vault.values() == {"A": "old"}
    assert vault.record("A")["version"] == 1


# import: merge, replace, dry run --------------------------------------------------------------------------------


def test_merge_upserts_and_keeps_the_rest(seeded: Vault, tmp_path: Path) -> None:
    result = seeded.ok("secrets", "import", "--file", write(tmp_path, "m.json", {"A": "new", "B": "added"}),
                       "--scope", SCOPE, "--allow-plaintext", "--merge")

    assert result.stdout == "imported: 1 added, 1 changed, 0 removed\n"
    assert seeded.values() == {"A": "new", "B": "added", "C": "old", "notion.a": "old", "notion.b": "old"}
    assert seeded.record("A")["version"] == 2


def test_replace_deletes_only_in_the_named_scope(seeded: Vault, tmp_path: Path) -> None:
    result = seeded.ok("secrets", "import", "--file", write(tmp_path, "r.json", {"A": "new", "B": "added"}),
                       "--scope", SCOPE, "--allow-plaintext", "--replace")

    assert result.stdout == "imported: 1 added, 1 changed, 3 removed\n"
    assert seeded.values() == {"A": "new", "B": "added"}
    assert seeded.values("project:p2") == {"D": "other project"}


def test_replace_with_items_deletes_in_each_named_scope_only(seeded: Vault, tmp_path: Path) -> None:
    seeded.set("gone", "old", "user:alice")
    seeded.set("stays", "old", "user:bob")
    doc = {"items": [{"scope": SCOPE, "key": "A", "value": "new"}, {"scope": "user:alice", "key": "pat", "value": "t"}]}

    seeded.ok("secrets", "import", "--file", write(tmp_path, "r.json", doc), "--allow-plaintext", "--replace")

    assert seeded.values() == {"A": "new"}
    assert seeded.values("user:alice") == {"pat": "t"}
    assert seeded.values("user:bob") == {"stays": "old"}
    assert seeded.values("project:p2") == {"D": "other project"}


def test_replace_with_a_prefix_deletes_only_under_the_prefix(seeded: Vault, tmp_path: Path) -> None:
    seeded.ok("secrets", "import", "--file", write(tmp_path, "r.json", {"notion.a": "new"}), "--scope", SCOPE,
              "--allow-plaintext", "--replace", "--prefix", "notion.")

    assert seeded.values() == {"A": "old", "C": "old", "notion.a": "new"}


def test_dry_run_lists_the_changes_and_writes_nothing(seeded: Vault, tmp_path: Path) -> None:
    before = {key: seeded.record(key) for key in seeded.names()}

    result = seeded.ok("secrets", "import", "--file", write(tmp_path, "r.json", {"A": CANARY, "B": CANARY}),
                       "--scope", SCOPE, "--allow-plaintext", "--replace", "--dry-run")

    assert sorted(result.stdout.splitlines()) == sorted([
        f"+ {SCOPE} B", f"~ {SCOPE} A", f"- {SCOPE} C", f"- {SCOPE} notion.a", f"- {SCOPE} notion.b"])
    assert "dry run: would import 1 added, 1 changed, 3 removed" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    assert {key: seeded.record(key) for key in seeded.names()} == before
    assert seeded.values() == {"A": "old", "C": "old", "notion.a": "old", "notion.b": "old"}
