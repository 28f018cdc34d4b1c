"""Every command that reports a result takes `--json` (`secrets set`: `--print-json`, its `--json` being about the
value) and prints exactly one JSON document on stdout, in the shape docs/cli.md#json-output gives. Each shape is a
JSON Schema here, closed (no extra fields), so a renamed or added field fails until the docs and this file follow.
The walk over the Click tree makes a new `--json` without a schema here fail too."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest

from sprongus.entrypoints.cli import cli
from tests.e2e.conftest import Machine, Vault, tamper_ciphertext, write_file
from tests.e2e.test_cli_serve_login import NO_KEYCHAIN, serving

STR, INT, BOOL = {"type": "string"}, {"type": "integer", "minimum": 0}, {"type": "boolean"}
TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"}
NULL_STR, NULL_TIME = {"type": ["string", "null"]}, {"anyOf": [TIME, {"type": "null"}]}
STRS = {"type": "array", "items": STR}


def closed(**properties: Any) -> dict[str, Any]:
    """An object with exactly these fields, every one present."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


METADATA = dict(ownerType={"enum": ["user", "project", "system"]}, ownerId=NULL_STR, scope=STR, keyName=STR,
                version=INT, createdAt=TIME, updatedAt=TIME, lastRotatedAt=NULL_TIME, meta={"type": "object"})
RECORD = closed(**METADATA, value=STR, masked=BOOL)
RECORD["properties"]["damaged"] = {"const": True}  # only on a stored row that no longer decodes
RECORD["properties"]["deletedAt"] = TIME  # only on a deleted secret (`list --deleted`)
VERSION_INFO = closed(version=INT, createdAt=NULL_TIME, createdBy=NULL_STR, current=BOOL)
PAIRS = array(closed(scope=STR, keyName=STR))
TOKEN = dict(id=STR, subject=STR, kind={"enum": ["operator", "workload", "user"]}, trust=NULL_STR, scopes=STRS,
             projects=STRS, keyPrefix=STR, createdAt=TIME, expiresAt=TIME, revoked=BOOL)
TRUST = closed(name=STR, issuer=STR, audience=STR, jwksUrl=NULL_STR, claims={"type": "object"}, subjectClaim=STR,
               subjectPrefix=STR, scopes=STRS, projects=STRS, keyPrefix=STR, ttlSeconds=INT,
               kind={"enum": ["workload", "user"]}, createdAt=NULL_TIME)
TOKEN_STATE = {"enum": ["revoked", "invalid", None]}
AUDIT_EVENT = closed(seq=INT, time=TIME, actor=STR, action=STR, scope=NULL_STR, keyName=NULL_STR,
                     version={"type": ["integer", "null"]}, outcome=STR, requestId=NULL_STR, clientAddress=NULL_STR,
                     detail={"type": "object"}, prevHash=STR, hash=STR)
CHECKPOINT = {"anyOf": [closed(seq=INT, count=INT, time=TIME, keyId=NULL_STR), {"type": "null"}]}

SCHEMAS: dict[str, dict[str, Any]] = {
    "secrets set": closed(scope=STR, keyName=STR, version=INT, created=BOOL),
    "secrets get": RECORD,
    "secrets unset": {"anyOf": [closed(scope=STR, keyName=STR, deleted={"const": True}),
                                closed(scope=STR, keyName=STR, deleted={"const": True},
                                       destroyedVersions=array(INT))]},
    "secrets history": closed(scope=STR, keyName=STR, items=array(VERSION_INFO), deletedAt=NULL_TIME),
    "secrets rollback": closed(scope=STR, keyName=STR, version=INT, fromVersion=INT),
    "secrets restore": closed(scope=STR, keyName=STR, version=INT, restored={"const": True}),
    "secrets purge-expired": closed(secrets=INT, versions=INT),
    "secrets list": closed(scope=STR, items=array(RECORD)),
    "secrets rotate": closed(scope=STR, keyName=NULL_STR, prefix=STR, rotated=INT),
    "secrets import": closed(added=PAIRS, updated=PAIRS, removed=PAIRS, dryRun=BOOL),
    "secrets export": closed(format={"const": "sprongus.metadata.v1"}, scope=STR, prefix=STR,
                             items=array(closed(**METADATA))),
    "keys status": closed(provider=STR, location=STR, currentKeyId=NULL_STR, hmacKeyId=NULL_STR,
                          secretsByMasterKey={"type": "object", "additionalProperties": INT},
                          vaultKeys={"type": "object", "additionalProperties": STR}),
    "keys verify": closed(checked=INT, ok=BOOL, failures=array(closed(scope=STR, keyName=STR, reason=STR)),
                          auditProblems=STRS),
    "keys rotate-master": closed(currentKeyId=STR, newKeyId=NULL_STR, rewrapped=INT, hmacKeysDamaged=INT),
    "keys rotate-hmac": closed(hmacKeyId=STR),
    "tokens create": closed(token={"type": "string", "pattern": "^spr_"}, **TOKEN),
    "tokens list": array(closed(**TOKEN, state={"enum": ["active", "expired", "revoked"]})),
    "tokens revoke": closed(id=STR, revoked={"const": True}),
    "auth trust add": TRUST,
    "auth trust list": array(TRUST),
    "auth trust remove": closed(name=STR, removed={"const": True}),
    "auth status": closed(subject=STR, kind={"enum": ["operator", "workload", "user"]}, trust=NULL_STR, scopes=STRS,
                          projects=STRS, keyPrefix=STR, tokenId=STR, expiresAt=TIME, authTime=TIME,
                          authAgeSeconds=INT, tokenSource={"enum": ["SPRONGUS_TOKEN", "SPRONGUS_OIDC_TOKEN_FILE",
                                                                    "login"]}),
    "login": closed(apiUrl=STR, storedIn={"enum": ["keychain", "file"]}, subject=NULL_STR, expiresAt=NULL_TIME),
    "logout": closed(apiUrl=STR, keptToken=TOKEN_STATE, envToken=TOKEN_STATE),
    "db upgrade": closed(applied=STRS),
    "audit list": array(AUDIT_EVENT),
    "audit verify": closed(ok=BOOL, events=INT, problems=STRS, checkpoints=INT, macsChecked=INT,
                           newestCheckpoint=CHECKPOINT, notes=STRS),
}
JSON_FLAGS = ("--json", "--print-json")
# Commands whose --json means something else (or whose output is JSON without asking: `secrets export`).
NOT_A_REPORT = {"secrets set": "--json"}


def _walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}".strip())


def _json_flag(path: str, command: click.Command) -> bool:
    flags = {opt for param in command.params for opt in param.opts if opt in JSON_FLAGS}
    return bool(flags - {NOT_A_REPORT.get(path)})


def test_every_command_with_a_json_report_has_a_schema_here() -> None:
    reporting = {path for path, command in _walk(cli, "") if _json_flag(path, command)}
    assert reporting | {"secrets export"} == set(SCHEMAS)


def checked(name: str, stdout: str) -> Any:
    """stdout is one JSON document (nothing before or after it) in the command's shape."""
    document = json.loads(stdout)
    jsonschema.validate(document, SCHEMAS[name])
    return document


def test_each_local_command_prints_its_documented_shape(vault: Vault, tmp_path: Path) -> None:
    seen: set[str] = set()

    def run(name: str, *args: str, input: str | None = None) -> Any:
        result = vault.ok(*name.split(), *args, input=input)
        seen.add(name)
        return checked(name, result.stdout)

    created = run("secrets set", "project:p1", "notion.token", "-", "--print-json", input="v1\n")
    updated = run("secrets set", "project:p1", "notion.token", "--print-json", "--meta", "team=a", input="v2\n")
    assert (created, updated["created"], updated["version"]) == (
        {"scope": "project:p1", "keyName": "notion.token", "version": 1, "created": True}, False, 2)
    assert run("secrets set", "system", "sys.key", "-", "--json", "--print-json", input='{"a": 1}\n')["created"]
    assert run("secrets get", "project:p1", "notion.token", "--json")["masked"] is True
    assert run("secrets list", "project:p1", "--json", "--meta")["items"][0]["meta"] == {"team": "a"}
    assert run("secrets list", "project:empty", "--json")["items"] == []
    assert run("secrets rotate", "project:p1", "notion.token", "--json")["keyName"] == "notion.token"
    assert run("secrets rotate", "project:p1", "--prefix", "notion.", "--json")["rotated"] == 1
    dotenv = write_file(tmp_path, "web.env", "A=1\nB=2\n")
    dry = run("secrets import", "--file", dotenv, "--scope", "project:web", "--allow-plaintext", "--dry-run", "--json")
    assert (dry["added"], dry["dryRun"]) == ([{"scope": "project:web", "keyName": "A"},
                                              {"scope": "project:web", "keyName": "B"}], True)
    assert vault.names("project:web") == []  # a dry run writes nothing
    run("secrets import", "--file", dotenv, "--scope", "project:web", "--allow-plaintext", "--json")
    replaced = run("secrets import", "--file", write_file(tmp_path, "b.env", "B=3\n"), "--scope", "project:web",
                   "--allow-plaintext", "--replace", "--json")
    assert (replaced["updated"], replaced["removed"], replaced["dryRun"]) == (
        [{"scope": "project:web", "keyName": "B"}], [{"scope": "project:web", "keyName": "A"}], False)
    run("secrets export", "project:p1")
    assert run("secrets unset", "project:web", "B", "--json") == {"scope": "project:web", "keyName": "B",
                                                                  "deleted": True}
    deleted = run("secrets list", "project:web", "--deleted", "--meta", "--json")["items"]
    assert [item["keyName"] for item in deleted] == ["A", "B"]  # A: removed by the replace import
    assert run("secrets restore", "project:web", "B", "--json")["restored"] is True
    history = run("secrets history", "project:p1", "notion.token", "--json")
    assert [i["version"] for i in history["items"]] == [4, 3, 2, 1]
    assert run("secrets rollback", "project:p1", "notion.token", "--to", "1", "--json")["version"] == 5
    purged = run("secrets unset", "project:web", "B", "--purge", "--yes", "--json")
    assert purged["destroyedVersions"] == [2, 1]
    assert run("secrets purge-expired", "--json") == {"secrets": 0, "versions": 0}

    # rotate-master rewraps every kept version, a deleted secret's too: notion.token's 5, sys.key and web's A.
    before = run("keys status", "--json")["currentKeyId"]
    rotated = run("keys rotate-master", "--json")
    assert rotated["newKeyId"] == rotated["currentKeyId"] != before and rotated["rewrapped"] == 7
    assert run("keys rotate-hmac", "--json")["hmacKeyId"] == vault.status()["hmacKeyId"]
    assert run("keys verify", "--json")["ok"] is True

    token = run("tokens create", "--subject", "alice", "--scope", "secrets:read", "--project", "p1", "--ttl", "1h",
                "--json")
    assert (token["subject"], token["projects"], token["revoked"]) == ("alice", ["p1"], False)
    assert run("tokens revoke", token["id"], "--json") == {"id": token["id"], "revoked": True}
    assert [t["state"] for t in run("tokens list", "--json")] == ["revoked"]

    trust = run("auth trust add", "gha", "--issuer", "https://token.actions.githubusercontent.com", "--audience",
                "sprongus", "--claim", "repository=acme/shop", "--scope", "secrets:read", "--json")
    assert (trust["name"], trust["claims"], trust["ttlSeconds"]) == ("gha", {"repository": "acme/shop"}, 900)
    assert run("auth trust list", "--json") == [trust]
    assert run("auth trust remove", "gha", "--json") == {"name": "gha", "removed": True}
    assert run("db upgrade", "--json") == {"applied": []}  # the vault migrated itself on first use
    events = run("audit list", "--key", "notion.token", "--json")
    assert events and {e["keyName"] for e in events} == {"notion.token"}
    assert run("audit verify", "--json")["ok"] is True

    assert seen == set(SCHEMAS) - {"auth status", "login", "logout"}  # those three: below, against a server


def test_a_failing_verify_still_prints_pure_json_and_exits_7(vault: Vault) -> None:
    vault.set("k", "v")
    tamper_ciphertext(vault.db, "k")

    result = vault("keys", "verify", "--json")

    assert result.exit_code == 7
    report = checked("keys verify", result.stdout)
    assert (report["ok"], [f["keyName"] for f in report["failures"]]) == (False, ["k"])


def test_errors_stay_off_stdout_with_json(vault: Vault) -> None:
    missing = vault("secrets", "unset", "project:p1", "missing", "--json")
    no_token = vault("tokens", "revoke", "tok_missing", "--json")

    assert (missing.exit_code, missing.stdout) == (3, "")
    assert (no_token.exit_code, no_token.stdout) == (3, "")
    assert missing.stderr.startswith("error: ") and no_token.stderr.startswith("error: ")


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: no OS keychain")
def test_login_auth_status_and_logout_against_a_real_server(machine: Machine, tmp_path: Path) -> None:
    token = checked("tokens create", machine.ok("tokens", "create", "--subject", "alice", "--scope", "secrets:read",
                                                "--json").stdout)["token"]
    with serving(machine, tmp_path / "serve.log") as (port, _):
        url = f"http://127.0.0.1:{port}"
        remote = {**NO_KEYCHAIN, "SPRONGUS_API_URL": url}
        login = machine.ok("login", "--json", input=token + "\n", env=remote)
        status = machine.ok("auth", "status", "--json", env=remote)
        logout = machine.ok("logout", "--json", env=remote)
        again = machine.ok("logout", "--json", env=remote)
        from_env = machine.ok("logout", "--json", env={**remote, "SPRONGUS_TOKEN": token})

    assert checked("login", login.stdout) == {"apiUrl": url, "storedIn": "file", "subject": None, "expiresAt": None}
    assert token not in login.stdout + login.stderr  # the summary, never the token
    assert checked("auth status", status.stdout)["subject"] == "alice"
    assert checked("logout", logout.stdout) == {"apiUrl": url, "keptToken": "revoked", "envToken": None}
    assert checked("logout", again.stdout) == {"apiUrl": url, "keptToken": None, "envToken": None}
    assert checked("logout", from_env.stdout) == {"apiUrl": url, "keptToken": None, "envToken": "invalid"}
    assert "unset SPRONGUS_TOKEN" in from_env.stderr  # what the user must still do stays on stderr
