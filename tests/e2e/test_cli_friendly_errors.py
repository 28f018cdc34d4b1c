"""Common mistakes get a message that says what to type instead: one line, exit 2, the field named, no value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sprongus.domain.names import KEY_NAME_RULE
from tests.e2e.conftest import SCOPE, Machine, Vault, one_error_line
from tests.e2e.conftest import write_file as write
from tests.harness import CANARY

KEY_WORDS = ("a key name starts with a letter and holds letters, digits, '_' and '-', in parts joined by '.'; "
             "at most 128 characters")


@pytest.mark.parametrize("typed", ["proj:p1", "project/p1", "projects:p1", "Project:p1", "p1", "porject:p1"])
def test_a_mistyped_scope_gets_a_did_you_mean(vault: Vault, typed: str) -> None:
    result = vault("secrets", "set", typed, "k", CANARY)

    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        "error: scope: must be user:<id>, project:<id> or system; did you mean project:p1?")
    assert CANARY not in result.stdout + result.stderr
    assert not vault.db.exists() or vault.names() == []


@pytest.mark.parametrize(("typed", "guess"), [("System", "system"), ("users:alice", "user:alice"),
                                              ("alice@example.com", "user:alice@example.com")])
def test_other_kinds_are_guessed_too(vault: Vault, typed: str, guess: str) -> None:
    result = vault("secrets", "list", typed)

    assert result.exit_code == 2
    assert one_error_line(result.stderr, naming="scope").endswith(f"; did you mean {guess}?")


@pytest.mark.parametrize("typed", ["team:acme", "system:x", "notion.api_token", "user:", "project:-x"])
def test_no_guess_when_there_is_no_clear_one(vault: Vault, typed: str) -> None:
    result = vault("secrets", "list", typed)

    assert result.exit_code == 2
    assert "did you mean" not in one_error_line(result.stderr, naming="scope")


def test_the_import_scope_option_gets_the_guess_too(vault: Vault, tmp_path: Path) -> None:
    result = vault("secrets", "import", "--file", write(tmp_path, "a.env", f"A={CANARY}\n"), "--scope", "proj:p1",
                   "--allow-plaintext")

    assert result.exit_code == 2
    assert one_error_line(result.stderr, naming="scope").endswith("did you mean project:p1?")
    assert CANARY not in result.stderr


@pytest.mark.parametrize("key", ["1password", "notion..token", "my key", "db/password", "x" * 129])
def test_a_bad_key_name_is_explained_in_words(vault: Vault, key: str) -> None:
    result = vault("secrets", "set", SCOPE, key, CANARY)

    assert result.exit_code == 2
    assert one_error_line(result.stderr) == f"error: key: {KEY_WORDS}"
    assert CANARY not in result.stderr


def test_the_api_keeps_the_regex_for_its_clients() -> None:
    """The words are the CLI's; problem bodies and the domain's errors still carry the pattern."""
    from sprongus.domain.errors import ValidationError
    from sprongus.domain.names import validate_key_name

    with pytest.raises(ValidationError) as err:
        validate_key_name("1password")
    assert err.value.rule == KEY_NAME_RULE


# imports ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "expected"), [
    (f"A=1\n# a comment\n1BAD={CANARY}\n", f"error: line 3: key: {KEY_WORDS}"),
    (f'A="multi\nline"\nexport my-key.={CANARY}\n', f"error: line 3: key: {KEY_WORDS}"),
    (f"A=1\n{CANARY}\nB=2\n", "error: line 2: a name without '=' (write NAME= for an empty value)"),
    (f"A=1\nB={'x' * 65537}\n", "error: line 2: value: "),
])
def test_a_dotenv_error_names_the_line_never_the_value(vault: Vault, tmp_path: Path, content: str,
                                                       expected: str) -> None:
    result = vault("secrets", "import", "--file", write(tmp_path, "app.env", content), "--scope", SCOPE,
                   "--allow-plaintext")

    assert result.exit_code == 2
    assert one_error_line(result.stderr).startswith(expected)
    assert CANARY not in result.stderr and "x" * 100 not in result.stderr
    assert not vault.db.exists() or vault.names() == []


def test_a_dotenv_key_outside_the_prefix_is_named_by_its_line(vault: Vault, tmp_path: Path) -> None:
    result = vault("secrets", "import", "--file", write(tmp_path, "app.env", f"app.a=1\nB={CANARY}\n"), "--scope",
                   SCOPE, "--allow-plaintext", "--prefix", "app.")

    assert result.exit_code == 2
    assert one_error_line(result.stderr) == "error: line 2: key: must start with the import's prefix app."
    assert CANARY not in result.stderr


def test_a_json_key_error_keeps_the_item_and_says_the_rule_in_words(vault: Vault, tmp_path: Path) -> None:
    doc = json.dumps({"items": [{"key": "A", "value": "1"}, {"key": "1bad", "value": CANARY}]})
    result = vault("secrets", "import", "--file", write(tmp_path, "a.json", doc), "--scope", SCOPE,
                   "--allow-plaintext")

    assert result.exit_code == 2
    assert one_error_line(result.stderr) == f"error: items[1].key: {KEY_WORDS}"
    assert CANARY not in result.stderr


@pytest.mark.parametrize("name", ["deep.json", "deep.bundle"])
def test_json_nested_past_the_parser_is_a_json_error_not_an_unexpected_one(vault: Vault, tmp_path: Path,
                                                                          name: str) -> None:
    """`[[[[...` a hundred thousand deep: Python's parser gave up with a RecursionError, exit 1 "unexpected"."""
    result = vault("secrets", "import", "--file", write(tmp_path, name, "[" * 100_000 + "]" * 100_000), "--scope",
                   SCOPE, "--allow-plaintext")

    assert result.exit_code == 2
    assert one_error_line(result.stderr).startswith("error: json: the file nests too deep to read")
    assert not vault.db.exists() or vault.names() == []


def test_a_passphrase_bundle_without_passphrase_file_says_what_to_add(machine: Machine, tmp_path: Path) -> None:
    machine.ok("secrets", "set", SCOPE, "k", "-", input=f"{CANARY}\n")
    (tmp_path / "pass.txt").write_text("correct horse battery\n")
    machine.ok("secrets", "export", SCOPE, "--bundle", "--passphrase-file", str(tmp_path / "pass.txt"), "--out",
               str(tmp_path / "b.json"))
    other = tmp_path / "other"

    proc = machine.run("secrets", "import", "--file", str(tmp_path / "b.json"), home=other)

    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == (
        "error: passphrase-file: this bundle is protected by a passphrase; add --passphrase-file FILE")
    assert CANARY not in proc.stdout + proc.stderr
    assert not (other / "master.key").exists()  # refused before anything was made
