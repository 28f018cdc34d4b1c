"""`sprongus tokens create --kind --key-prefix`, in-process on a SQLite vault: the token is stored with its kind and
key prefix, `tokens list` shows them, the API holds the token to its prefix, and a malformed prefix is refused."""

from __future__ import annotations

import json

import pytest

from sprongus.domain.principal import Principal
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.api import create_app
from tests.e2e.conftest import Vault, one_error_line

CREATE = ["tokens", "create", "--subject", "svc", "--scope", "secrets:read", "--scope", "secrets:reveal",
          "--project", "shop", "--ttl", "1h"]


def _listed(vault: Vault) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(vault.ok("tokens", "list", "--json").stdout)
    return listed


def test_a_workload_token_with_a_key_prefix_is_listed_with_both(vault: Vault) -> None:
    created = vault.ok(*CREATE, "--kind", "workload", "--key-prefix", "notion.")
    token = created.stdout.strip()
    assert token.startswith("spr_") and created.stdout.count("\n") == 1
    token_id = created.stderr.split()[1]

    [item] = _listed(vault)
    assert {k: item[k] for k in ("id", "subject", "kind", "keyPrefix", "projects", "scopes", "state")} == {
        "id": token_id, "subject": "svc", "kind": "workload", "keyPrefix": "notion.", "projects": ["shop"],
        "scopes": ["secrets:read", "secrets:reveal"], "state": "active"}
    table = vault.ok("tokens", "list").stdout
    header, row = table.splitlines()[:2]
    assert "kind" in header.lower() and "key prefix" in header.lower()
    assert "workload" in row.split() and "notion." in row.split()
    assert token not in table + json.dumps(item)


def test_without_the_options_a_token_is_an_operators_and_sees_every_key(vault: Vault) -> None:
    vault.ok(*CREATE)
    [item] = _listed(vault)
    assert (item["kind"], item["keyPrefix"]) == ("operator", "")
    row = vault.ok("tokens", "list").stdout.splitlines()[1]
    assert "operator" in row.split() and "-" in row.split()


def test_the_api_holds_a_cli_made_token_to_its_prefix(vault: Vault) -> None:
    """The prefix survives the round trip through the SQLite token store and the API's token lookup."""
    token = vault.ok(*CREATE, "--kind", "workload", "--key-prefix", "notion.").stdout.strip()
    container = vault.container()
    for key in ("notion.api_token", "stripe.key"):
        container.secret_ops().set(Principal.local_owner("ops"), Scope.project("shop"), key, SecretValue(key))
    client = create_app(container).test_client()
    auth = {"Authorization": f"Bearer {token}"}

    listed = client.get("/v1/secrets?ownerType=project&ownerId=shop", headers=auth)
    assert [i["keyName"] for i in listed.get_json()["items"]] == ["notion.api_token"]
    shown = client.post("/v1/secrets/project/shop/notion.api_token:reveal", headers=auth)
    assert shown.status_code == 200 and shown.get_json()["value"] == "notion.api_token"
    hidden = client.post("/v1/secrets/project/shop/stripe.key:reveal", headers=auth)
    absent = client.post("/v1/secrets/project/shop/stripe.absent:reveal", headers=auth)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.get_data() == absent.get_data()
    container.database().db.close()


@pytest.mark.parametrize("prefix", ["1notion.", ".notion", "notion/", "notion .", "notion*", "nötion.",
                                    "n" * 129])
def test_a_malformed_key_prefix_is_refused_naming_it(vault: Vault, prefix: str) -> None:
    result = vault(*CREATE, "--kind", "workload", "--key-prefix", prefix)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""  # no token printed
    one_error_line(result.stderr, naming="key-prefix")
    assert _listed(vault) == []


def test_an_unknown_kind_is_refused(vault: Vault) -> None:
    result = vault(*CREATE, "--kind", "user", "--key-prefix", "notion.")  # user tokens come from sign-in only
    assert result.exit_code == 2 and result.stdout == ""
    assert "--kind" in result.stderr
    assert _listed(vault) == []
