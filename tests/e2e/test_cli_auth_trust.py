"""`sprongus auth trust add|list|remove`: the operator's trusts, kept in the SQLite vault (CliRunner, a fresh
container per command as in a real process)."""

from __future__ import annotations

import json

import pytest
from dependency_injector import providers

from sprongus.entrypoints.cli.state import CliState
from sprongus.service.trusts import TrustOps
from tests.e2e.conftest import Vault, one_error_line

GHA = ["--issuer", "https://token.actions.githubusercontent.com", "--audience", "sprongus",
       "--claim", "repository=acme/shop", "--claim", "ref=refs/heads/main", "--subject-prefix", "gha:",
       "--project", "shop", "--scope", "secrets:read", "--scope", "secrets:reveal"]


def test_add_list_and_remove_a_github_actions_trust(vault: Vault) -> None:
    added = vault.ok("auth", "trust", "add", "gha-shop", *GHA)
    people = vault.ok("auth", "trust", "add", "people", "--kind", "user", "--issuer", "https://sso.example.com/realms/a",
                      "--audience", "sprongus-cli", "--subject-claim", "email", "--scope", "secrets:read",
                      "--ttl", "8h", "--key-prefix", "notion.", "--jwks-url", "https://sso.example.com/jwks")
    listed = vault.ok("auth", "trust", "list")
    as_json = json.loads(vault.ok("auth", "trust", "list", "--json").stdout)
    removed = vault.ok("auth", "trust", "remove", "gha-shop")
    after = json.loads(vault.ok("auth", "trust", "list", "--json").stdout)

    assert added.stdout == ("added trust gha-shop: workload tokens for https://token.actions.githubusercontent.com "
                            "(audience sprongus), 15m\n")
    assert people.stdout.startswith("added trust people: user tokens for https://sso.example.com/realms/a")
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "KIND", "ISSUER", "AUDIENCE"]
    assert lines[1].split() == ["gha-shop", "workload", "https://token.actions.githubusercontent.com", "sprongus",
                                "ref=refs/heads/main,repository=acme/shop", "gha:<sub>",
                                "secrets:read,secrets:reveal", "shop", "-", "15m"]
    assert lines[2].split() == ["people", "user", "https://sso.example.com/realms/a", "sprongus-cli", "-",
                                "<email>", "secrets:read", "-", "notion.", "8h"]
    gha = next(t for t in as_json if t["name"] == "gha-shop")
    assert gha | {"createdAt": None} == {
        "name": "gha-shop", "issuer": "https://token.actions.githubusercontent.com", "audience": "sprongus",
        "jwksUrl": None, "claims": {"repository": "acme/shop", "ref": "refs/heads/main"}, "subjectClaim": "sub",
        "subjectPrefix": "gha:", "scopes": ["secrets:read", "secrets:reveal"], "projects": ["shop"],
        "keyPrefix": "", "ttlSeconds": 900, "kind": "workload", "createdAt": None}
    assert gha["createdAt"].endswith("Z")
    assert removed.stdout == "removed trust gha-shop\n"
    assert [t["name"] for t in after] == ["people"]


def test_an_empty_list_says_so(vault: Vault) -> None:
    assert vault.ok("auth", "trust", "list").stdout == "no trusts\n"
    assert json.loads(vault.ok("auth", "trust", "list", "--json").stdout) == []


@pytest.mark.parametrize(("args", "field"), [
    (["bad name", *GHA], "name"),
    (["t", *GHA, "--issuer", "ftp://example.com"], "issuer"),
    (["t", *GHA, "--issuer", "https://user:pw@example.com"], "issuer"),
    (["t", *GHA, "--jwks-url", "not a url"], "jwks-url"),
    (["t", *GHA, "--audience", ""], "audience"),
    (["t", *GHA, "--claim", "repository"], "claim"),
    (["t", *GHA, "--claim", "=acme/*"], "claim"),
    (["t", *GHA, "--subject-claim", "sub claim"], "subject-claim"),
    (["t", *GHA, "--subject-prefix", "gha prefix:"], "subject-prefix"),
    (["t", *GHA, "--project", "-shop"], "project"),
    (["t", *GHA, "--key-prefix", "bad prefix"], "key-prefix"),
    (["t", *GHA, "--ttl", "13h"], "ttl"),
    (["t", *GHA, "--ttl", "soon"], "ttl"),
    (["t", *GHA, "--ttl", "9" * 5000], "ttl"),  # past int()'s 4,300 digits: was "unexpected ValueError", exit 1
    (["t", *GHA, "--ttl", "\u0661\u0662m"], "ttl"),  # Arabic-Indic digits
])
def test_invalid_input_exits_2_naming_the_field(vault: Vault, args: list[str], field: str) -> None:
    result = vault("auth", "trust", "add", *args)

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert one_error_line(result.stderr).startswith(f"error: {field}: ")
    assert json.loads(vault.ok("auth", "trust", "list", "--json").stdout) == []  # nothing was added


def test_click_refuses_unknown_scopes_and_kinds_and_missing_options(vault: Vault) -> None:
    for args in (["t", *GHA, "--scope", "secrets:everything"], ["t", *GHA, "--kind", "operator"],
                 ["t", "--audience", "a", "--scope", "secrets:read"], ["t", "--issuer", "https://x.example"]):
        result = vault("auth", "trust", "add", *args)
        assert result.exit_code == 2 and "Usage:" in result.stderr, args


def test_a_second_trust_of_the_same_name_is_a_conflict_and_removing_a_missing_one_is_not_found(vault: Vault) -> None:
    vault.ok("auth", "trust", "add", "gha-shop", *GHA)

    again = vault("auth", "trust", "add", "gha-shop", *GHA)
    vault.ok("auth", "trust", "remove", "gha-shop")
    missing = vault("auth", "trust", "remove", "gha-shop")

    assert again.exit_code == 5
    one_error_line(again.stderr, naming="gha-shop")
    assert missing.exit_code == 3
    assert one_error_line(missing.stderr) == "error: trust gha-shop not found"


def test_http_issuers_only_outside_prod(vault: Vault) -> None:
    """dev admits an http:// issuer (a local test IdP); prod's TrustOps (allow_http off) refuses it."""
    vault.ok("auth", "trust", "add", "local", *GHA, "--issuer", "http://127.0.0.1:9000")
    prod = vault.container()
    prod.trust_ops.override(providers.Singleton(TrustOps, prod.trust_store, prod.clock, False))
    refused = vault("auth", "trust", "add", "prod", *GHA, "--issuer", "http://127.0.0.1:9000",
                    state=CliState(container=prod))

    assert json.loads(vault.ok("auth", "trust", "list", "--json").stdout)[0]["issuer"] == "http://127.0.0.1:9000"
    assert refused.exit_code == 2
    assert one_error_line(refused.stderr).startswith("error: issuer: must be an absolute https URL")
