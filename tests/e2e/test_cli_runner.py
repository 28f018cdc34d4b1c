"""`sprongus secrets set|get|unset|list` in-process (CliRunner: stdin is never a terminal here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Vault, one_error_line
from tests.harness import CANARY

# set ------------------------------------------------------------------------------------------------------------


def test_set_from_argv_stores_the_value_and_warns_about_shell_history(vault: Vault) -> None:
    result = vault.ok("secrets", "set", SCOPE, "notion.api_token", "tok-123")

    assert result.stdout == f"created {SCOPE} notion.api_token (version 1)\n"
    assert "shell history" in result.stderr
    assert "tok-123" not in result.stderr
    assert vault.reveal("notion.api_token") == b"tok-123"


@pytest.mark.parametrize("dash", [True, False], ids=["dash", "piped"])
@pytest.mark.parametrize(("given", "stored"), [
    (b"tok\n", b"tok"),
    (b"a\n\n", b"a\n"),  # only one newline is dropped
    (b"tok\r\n", b"tok"),
    (b"no newline", b"no newline"),
    (b"line1\nline2\n", b"line1\nline2"),
    (b"", b""),
])
def test_set_from_stdin_drops_exactly_one_trailing_newline(vault: Vault, dash: bool, given: bytes,
                                                           stored: bytes) -> None:
    args = ["secrets", "set", SCOPE, "k", *(["-"] if dash else [])]
    result = vault.ok(*args, input=given)

    assert "shell history" not in result.stderr
    assert vault.reveal("k") == stored


@pytest.mark.parametrize("content", [b"line1\r\nline2\r\n", b"trailing\n\n", "h\u00e9llo \u2713\n".encode(), b""])
def test_set_from_file_stores_it_byte_for_byte(vault: Vault, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "value.txt"
    path.write_bytes(content)

    result = vault.ok("secrets", "set", SCOPE, "k", "--file", str(path))

    assert "shell history" not in result.stderr
    assert vault.reveal("k") == content


def test_set_json_is_stored_exactly_as_given(vault: Vault, tmp_path: Path) -> None:
    document = '{"type": "service_account",\n  "ids": [1, 2],   "nested": {"a": null}}\n'
    path = tmp_path / "sa.json"
    path.write_text(document)

    vault.ok("secrets", "set", SCOPE, "gdocs.service_account", "--json", "--file", str(path))
    vault.ok("secrets", "set", SCOPE, "inline", "--json", '[1,  "two"]')

    assert vault.reveal("gdocs.service_account") == document.encode()
    assert vault.reveal("inline") == b'[1,  "two"]'


@pytest.mark.parametrize("source", ["argv", "stdin", "file"])
def test_set_json_refuses_invalid_json_naming_json_and_writes_nothing(vault: Vault, tmp_path: Path,
                                                                      source: str) -> None:
    bad = '{"token": "' + CANARY  # unterminated
    path = tmp_path / "bad.json"
    path.write_text(bad)
    args = {"argv": [bad], "stdin": ["-"], "file": ["--file", str(path)]}[source]

    result = vault("secrets", "set", SCOPE, "k", "--json", *args, input=bad if source == "stdin" else None)

    assert result.exit_code == 2
    one_error_line(result.stderr, naming="json")
    assert CANARY not in result.stdout + result.stderr
    assert vault("secrets", "get", SCOPE, "k").exit_code == 3


def test_set_meta_is_repeatable_and_stored(vault: Vault) -> None:
    vault.set("notion.api_token", "tok", SCOPE, "--meta", "provider=notion", "--meta", "env=prod")

    assert vault.record("notion.api_token")["meta"] == {"provider": "notion", "env": "prod"}
    listing = vault.ok("secrets", "list", SCOPE, "--meta").stdout
    assert "env=prod, provider=notion" in listing


@pytest.mark.parametrize("meta", ["no-equals-sign", "BadKey=1", "1key=x", "k=" + "x" * 257])
def test_set_with_bad_meta_exits_2_naming_meta_and_writes_nothing(vault: Vault, meta: str) -> None:
    result = vault("secrets", "set", SCOPE, "k", "-", "--meta", meta, input="tok\n")

    assert result.exit_code == 2
    one_error_line(result.stderr, naming="meta")
    assert vault("secrets", "get", SCOPE, "k").exit_code == 3


def test_every_set_writes_a_new_version_even_of_an_unchanged_value(vault: Vault) -> None:
    outputs = [vault.set("k", "same").stdout for _ in range(3)]

    assert outputs == [f"created {SCOPE} k (version 1)\n", f"updated {SCOPE} k (version 2)\n",
                       f"updated {SCOPE} k (version 3)\n"]
    record = vault.record("k")
    assert record["version"] == 3
    assert record["lastRotatedAt"] is None


def test_values_up_to_65536_bytes_are_accepted_and_one_more_is_refused(vault: Vault) -> None:
    vault.ok("secrets", "set", SCOPE, "max", "-", input=b"x" * 65536)
    result = vault("secrets", "set", SCOPE, "over", "-", input=b"x" * 65537)

    assert len(vault.reveal("max")) == 65536
    assert result.exit_code == 2
    one_error_line(result.stderr, naming="value")
    assert vault.names() == ["max"]


# get ------------------------------------------------------------------------------------------------------------


def test_get_prints_the_masked_record(vault: Vault) -> None:
    vault.set("notion.api_token", CANARY, SCOPE, "--meta", "provider=notion")

    out = vault.ok("secrets", "get", SCOPE, "notion.api_token").stdout

    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert {k: v.strip() for k, v in lines.items() if k in ("scope", "key", "value", "version", "meta")} == {
        "scope": SCOPE, "key": "notion.api_token", "value": "********", "version": "1", "meta": "provider=notion"}
    assert CANARY not in out


def test_get_json_is_the_masked_record(vault: Vault) -> None:
    vault.set("notion.api_token", CANARY)

    record = json.loads(vault.ok("secrets", "get", SCOPE, "notion.api_token", "--json").stdout)

    assert record["value"] == "********"
    assert record["masked"] is True
    assert (record["ownerType"], record["ownerId"], record["scope"], record["keyName"], record["version"]) == (
        "project", "p1", SCOPE, "notion.api_token", 1)


def test_reveal_without_a_terminal_and_without_yes_exits_4_and_prints_nothing(vault: Vault) -> None:
    vault.set("k", CANARY)

    result = vault("secrets", "get", SCOPE, "k", "--reveal")

    assert result.exit_code == 4
    assert result.stdout == ""
    assert "--yes" in one_error_line(result.stderr)
    assert CANARY not in result.stderr


@pytest.mark.parametrize(("stored", "flags", "printed"), [
    ("tok", [], b"tok\n"),
    ("tok", ["--no-newline"], b"tok"),
    ("a\n", [], b"a\n\n"),  # the value, then exactly one newline
    ("", [], b"\n"),
])
def test_reveal_with_yes_prints_the_value_and_one_newline(vault: Vault, stored: str, flags: list[str],
                                                          printed: bytes) -> None:
    vault.set("k", stored)

    result = vault.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes", *flags)

    assert result.stdout_bytes == printed
    assert result.stderr == ""


def test_reveal_json_carries_the_value_unmasked(vault: Vault) -> None:
    vault.set("k", "tok\twith tab")

    record = json.loads(vault.ok("secrets", "get", SCOPE, "k", "--reveal", "--yes", "--json").stdout)

    assert (record["value"], record["masked"], record["version"]) == ("tok\twith tab", False, 1)


def test_scopes_are_separate(vault: Vault) -> None:
    vault.set("k", "project value")
    vault.set("k", "user value", "user:alice")
    vault.set("k", "system value", "system")

    assert [vault.reveal("k", s) for s in (SCOPE, "user:alice", "system")] == [
        b"project value", b"user value", b"system value"]
    assert vault("secrets", "get", "project:p2", "k").exit_code == 3


# unset ----------------------------------------------------------------------------------------------------------


def test_unset_deletes_and_a_missing_key_exits_3(vault: Vault) -> None:
    vault.set("k", "tok")

    assert vault.ok("secrets", "unset", SCOPE, "k").stdout == f"deleted {SCOPE} k\n"
    again = vault("secrets", "unset", SCOPE, "k")

    assert again.exit_code == 3
    one_error_line(again.stderr, naming="not found")
    assert vault("secrets", "get", SCOPE, "k").exit_code == 3


# list -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def listed(vault: Vault) -> Vault:
    vault.set("notion.api_token", CANARY, SCOPE, "--meta", "provider=notion")
    vault.set("notion.workspace", CANARY + "-2")
    vault.set("openai.key", CANARY + "-3")
    vault.set("elsewhere", CANARY, "project:p2")
    return vault


def test_list_prints_a_table_of_names_and_never_values(listed: Vault) -> None:
    out = listed.ok("secrets", "list", SCOPE).stdout

    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "VERSION", "UPDATED"]
    assert [line.split()[0] for line in lines[1:]] == ["notion.api_token", "notion.workspace", "openai.key"]
    assert CANARY not in out


def test_list_json_prefix_and_meta(listed: Vault) -> None:
    plain = json.loads(listed.ok("secrets", "list", SCOPE, "--json").stdout)
    tagged = json.loads(listed.ok("secrets", "list", SCOPE, "--json", "--meta", "--prefix", "notion.").stdout)
    table = listed.ok("secrets", "list", SCOPE, "--meta", "--prefix", "notion.").stdout

    assert plain["scope"] == SCOPE
    assert [i["keyName"] for i in plain["items"]] == ["notion.api_token", "notion.workspace", "openai.key"]
    assert all(i["value"] == "********" and i["masked"] is True and "meta" not in i for i in plain["items"])
    assert [(i["keyName"], i["meta"]) for i in tagged["items"]] == [
        ("notion.api_token", {"provider": "notion"}), ("notion.workspace", {})]
    assert table.splitlines()[0].split() == ["KEY", "VERSION", "UPDATED", "META"]
    assert "provider=notion" in table
    assert "openai.key" not in table
    assert CANARY not in json.dumps(plain) + json.dumps(tagged)


def test_list_of_an_empty_scope_says_so_on_stderr(vault: Vault) -> None:
    result = vault.ok("secrets", "list", "user:nobody", "--prefix", "x.")

    assert result.stdout == ""
    assert "no secrets in user:nobody with prefix x." in result.stderr
    assert json.loads(vault.ok("secrets", "list", "user:nobody", "--json").stdout)["items"] == []


def test_list_with_an_invalid_prefix_exits_2(vault: Vault) -> None:
    result = vault("secrets", "list", SCOPE, "--prefix", "bad prefix!")

    assert result.exit_code == 2
    one_error_line(result.stderr, naming="prefix")
