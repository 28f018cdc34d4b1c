"""`sprongus secrets ... --remote` (real processes) against gunicorn, beside the same commands run locally.

Local mode runs on a SQLite home; remote mode on the production stack. The design promises the same output and exit
codes, so most steps run the command both ways and compare, with timestamps normalised (the two vaults were written
at different moments).
"""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from sprongus.domain.errors import NotFound
from tests.e2e.conftest import Machine, Proc, one_error_line
from tests.e2e.gunicorn.conftest import REVEAL_LIMIT, Stack, free_port
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: gunicorn and a bao binary")

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def timeless(text: str) -> str:
    return TIME.sub("<time>", text)


# The API answers not-found with one fixed text (it never repeats a request's key or scope: that made errors a value
# oracle), so a remote "not found" reads the same for every key; local mode names the user's own key and scope.
REMOTE_NOT_FOUND = f"error: {NotFound.public}"


@dataclass
class Both:
    """One scenario, run remotely (as `token`) and locally on a fresh SQLite home, in the same scope."""

    stack: Stack
    local: Machine
    token: str
    scope: str

    def remote(self, *args: str, input: str | bytes | None = None) -> Proc:
        return self.stack.cli(self.token, *args, input=input)

    def here(self, *args: str, input: str | bytes | None = None) -> Proc:
        return self.local.run(*args, input=input)

    def same(self, *args: str, input: str | bytes | None = None, code: int = 0, failed: bool = True) -> Proc:
        """Run both ways; exit codes, stdout and (for failures) the error line must match. Returns the remote run."""
        with ThreadPoolExecutor(2) as pool:  # side by side: each process spends most of its time starting
            remote_run = pool.submit(self.remote, *args, input=input)
            local = self.here(*args, input=input)
            remote = remote_run.result()
        assert (remote.returncode, local.returncode) == (code, code), (args, remote, local)
        assert timeless(remote.stdout) == timeless(local.stdout), args
        if code != 0 and failed:
            expected = REMOTE_NOT_FOUND if code == 3 else one_error_line(local.stderr)
            assert one_error_line(remote.stderr) == expected, args
        assert "Traceback" not in remote.stderr
        return remote


@pytest.fixture
def both(stack: Stack, tmp_path: Path) -> Both:
    project = stack.unique("proj")
    token = stack.token(stack.unique("cli"), projects=(project,))
    local = Machine(tmp_path / "local")
    local.ok("secrets", "list", f"project:{project}")  # the first local command warns about the key file
    return Both(stack, local, token, f"project:{project}")


def test_set_from_every_source_get_masked_and_reveal_match_local_mode(both: Both, tmp_path: Path) -> None:
    scope = both.scope
    value_file = tmp_path / "value.txt"
    value_file.write_bytes(b"from file\r\nsecond line\r\n")

    argv = both.same("secrets", "set", scope, "from.argv", "argv-value", "--meta", "kind=argv")
    stdin = both.same("secrets", "set", scope, "from.stdin", "-", input=CANARY + "\n")
    both.same("secrets", "set", scope, "from.file", "--file", str(value_file))
    both.same("secrets", "set", scope, "from.json", "--json", "-", input='{"a":  [1, 2]}\n')
    again = both.same("secrets", "set", scope, "from.json", "--json", "-", input='{"b": 2}')
    both.same("secrets", "set", scope, "bad.json", "--json", "-", input="{nope\n", code=2)

    masked = both.same("secrets", "get", scope, "from.stdin")
    record = json.loads(both.same("secrets", "get", scope, "from.argv", "--json").stdout)
    listed = both.same("secrets", "list", scope)
    with_meta = json.loads(both.same("secrets", "list", scope, "--meta", "--json").stdout)
    revealed = both.same("secrets", "get", scope, "from.stdin", "--reveal", "--yes")
    raw_file = both.same("secrets", "get", scope, "from.file", "--reveal", "--yes", "--no-newline")
    as_json = json.loads(both.same("secrets", "get", scope, "from.json", "--reveal", "--yes", "--json").stdout)

    assert "shell history" in argv.stderr
    assert stdin.stdout == f"created {scope} from.stdin (version 1)\n"
    assert again.stdout == f"updated {scope} from.json (version 2)\n"
    assert "value:    ********" in masked.stdout and CANARY not in masked.stdout
    assert (record["value"], record["masked"], record["meta"], record["version"]) == ("********", True,
                                                                                     {"kind": "argv"}, 1)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["KEY", "from.argv", "from.file",
                                                                        "from.json", "from.stdin"]
    assert with_meta["items"][0]["meta"] == {"kind": "argv"}
    assert CANARY not in listed.stdout + json.dumps(with_meta)
    assert revealed.stdout_bytes == CANARY.encode() + b"\n"  # the value and one newline: $(...) works
    assert raw_file.stdout_bytes == b"from file\r\nsecond line\r\n"  # byte for byte
    assert (as_json["value"], as_json["masked"]) == ('{"b": 2}', False)


def test_unset_import_export_and_rotate_match_local_mode(both: Both, tmp_path: Path) -> None:
    scope = both.scope
    env_file, update = tmp_path / "seed.env", tmp_path / "update.env"
    env_file.write_text(f"export NOTION_TOKEN={CANARY}\nS_C='old c'\nS_MULTI=\"one\ntwo\"\nEMPTY=\n")
    update.write_text("S_C=new\nS_NEW=added\n")

    refused = both.same("secrets", "import", "--file", str(env_file), "--scope", scope, code=2)
    imported = both.same("secrets", "import", "--file", str(env_file), "--scope", scope, "--allow-plaintext")
    dry = both.same("secrets", "import", "--file", str(update), "--scope", scope, "--allow-plaintext", "--replace",
                    "--dry-run")
    listed_after_dry_run = both.same("secrets", "list", scope, "--json")
    metadata = json.loads(both.same("secrets", "export", scope).stdout)
    rotated_one = both.same("secrets", "rotate", scope, "S_C")
    rotated_prefix = both.same("secrets", "rotate", scope, "--prefix", "S_")
    rotated_all = both.same("secrets", "rotate", scope)
    record = json.loads(both.same("secrets", "get", scope, "S_C", "--json").stdout)
    deleted = both.same("secrets", "unset", scope, "EMPTY")
    both.same("secrets", "unset", scope, "EMPTY", code=3)
    bundle = both.remote("secrets", "export", scope, "--bundle")

    one_error_line(refused.stderr, naming="plaintext")
    assert imported.stdout == "imported: 4 added, 0 changed, 0 removed\n"
    assert sorted(dry.stdout.splitlines()) == [f"+ {scope} S_NEW", f"- {scope} EMPTY", f"- {scope} NOTION_TOKEN",
                                               f"- {scope} S_MULTI", f"~ {scope} S_C"]
    assert "would import 1 added, 1 changed, 3 removed" in dry.stderr
    assert [i["keyName"] for i in json.loads(listed_after_dry_run.stdout)["items"]] == [
        "EMPTY", "NOTION_TOKEN", "S_C", "S_MULTI"]  # the dry run wrote nothing
    assert metadata["format"] == "sprongus.metadata.v1"
    assert all("value" not in item for item in metadata["items"])
    assert rotated_one.stdout == f"rotated 1 secret in {scope}\n"
    assert rotated_prefix.stdout == f"rotated 2 secrets in {scope}\n"
    assert rotated_all.stdout == f"rotated 4 secrets in {scope}\n"
    assert (record["version"], record["lastRotatedAt"] is not None) == (4, True)
    assert deleted.stdout == f"deleted {scope} EMPTY\n"
    assert bundle.returncode == 0, bundle.stderr
    document = json.loads(bundle.stdout)
    assert document["format"] == "sprongus.bundle.v1"
    assert [item["key"] for item in document["items"]] == ["NOTION_TOKEN", "S_C", "S_MULTI"]
    assert CANARY not in bundle.stdout + dry.stdout + dry.stderr + json.dumps(metadata)


def test_run_maps_secrets_to_environment_variables(both: Both) -> None:
    scope = both.scope
    for key, value in (("notion.api_token", CANARY), ("gdocs.service-account", '{"type": "sa"}')):
        both.same("secrets", "set", scope, key, "-", input=value)
    script = "import json, os; print(json.dumps({k: os.environ[k] for k in ('NOTION_API_TOKEN', " \
             "'GDOCS_SERVICE_ACCOUNT')})); raise SystemExit(3)"

    ran = both.same("secrets", "run", scope, "--", sys.executable, "-c", script, code=3,
                     failed=False)  # the child's exit code, passed through

    assert json.loads(ran.stdout) == {"NOTION_API_TOKEN": CANARY, "GDOCS_SERVICE_ACCOUNT": '{"type": "sa"}'}


def test_exit_codes_map_the_same_way_as_local_mode(stack: Stack, tmp_path: Path) -> None:
    mine, theirs = stack.unique("proj"), stack.unique("proj")
    owner, other, reader, limited = stack.tokens_for(
        (stack.unique("owner"), ("secrets:read", "secrets:write", "secrets:reveal"), (mine,)),
        (stack.unique("other"), ("secrets:read", "secrets:write", "secrets:reveal"), (theirs,)),
        (stack.unique("reader"), ("secrets:read",), (mine,)),
        (stack.unique("limited"), ("secrets:read", "secrets:reveal"), (mine,)))
    scope = f"project:{mine}"
    assert stack.cli(owner, "secrets", "set", scope, "k", "-", input=CANARY).returncode == 0
    local = Machine(tmp_path / "local")
    local.run("secrets", "set", scope, "k", "-", input=CANARY)

    def code(token: str | None, *args: str, input: str | None = None, **env: str) -> tuple[int, str]:
        proc = stack.machine.run(*args, input=input, env=stack.remote_env(token, **env))
        assert CANARY not in proc.stdout + proc.stderr
        assert proc.stdout == ""
        return proc.returncode, one_error_line(proc.stderr)

    missing = code(owner, "secrets", "get", scope, "missing")
    assert missing == (3, REMOTE_NOT_FOUND)
    assert one_error_line(local.run("secrets", "get", scope, "missing").stderr) == \
        f"error: secret missing not found in {scope}"  # locally the user's own key and scope are named
    assert code(owner, "secrets", "unset", scope, "missing")[0] == 3
    assert code(owner, "secrets", "rotate", scope, "missing")[0] == 3
    too_big = "x" * 65_537
    assert code(owner, "secrets", "set", scope, "big", "-", input=too_big) == (
        2, one_error_line(local.run("secrets", "set", scope, "big", "-", input=too_big).stderr))

    # Another tenant's secret does not exist for you (404 -> 3), even though it does.
    assert code(other, "secrets", "get", scope, "k")[0] == 3
    assert code(other, "secrets", "get", scope, "k", "--reveal", "--yes")[0] == 3
    assert code(other, "secrets", "list", scope)[0] == 3
    # A token without the reveal scope is refused (403 -> 4); so are a bad token and no token (401 -> 4).
    assert code(reader, "secrets", "get", scope, "k", "--reveal", "--yes")[0] == 4
    assert code(reader, "secrets", "set", scope, "k", "-")[0] == 4
    assert code("spr_not-a-real-token", "secrets", "list", scope)[0] == 4
    assert code(None, "secrets", "list", scope)[0] == 4
    # Confirmation is still the CLI's: without a terminal, --reveal needs --yes (4), before any request.
    assert code(owner, "secrets", "get", scope, "k", "--reveal") == (
        4, one_error_line(local.run("secrets", "get", scope, "k", "--reveal").stderr))
    # Usage errors are 2 either way.
    assert code(owner, "secrets", "list", "bogus:scope")[0] == 2
    # The API unreachable: 8 (an outage, try again; was 1), with the cause.
    unreachable = code(owner, "secrets", "list", scope, SPRONGUS_API_URL=f"http://127.0.0.1:{free_port()}")
    assert unreachable[0] == 8 and "cannot reach the API" in unreachable[1]
    # The reveal limit: REVEAL_LIMIT reveals, then 6 with the retry delay.
    for _ in range(REVEAL_LIMIT):
        ok = stack.cli(limited, "secrets", "get", scope, "k", "--reveal", "--yes")
        assert (ok.returncode, ok.stdout) == (0, CANARY + "\n")
    limited_code, limited_line = code(limited, "secrets", "get", scope, "k", "--reveal", "--yes")
    assert limited_code == 6
    assert re.search(r"rate limit 'reveal' exceeded; retry after \d+ s", limited_line), limited_line


def test_the_remote_flag_works_without_sprongus_remote_and_write_only_tokens_can_set(stack: Stack) -> None:
    project = stack.unique("proj")
    token = stack.token(stack.unique("flag"), scopes=("secrets:write",), projects=(project,))
    env = {"SPRONGUS_API_URL": stack.url, "SPRONGUS_TOKEN": token}

    created = stack.machine.run("secrets", "set", f"project:{project}", "k", "-", "--remote", input="v", env=env)
    updated = stack.machine.run("secrets", "set", f"project:{project}", "k", "-", "--remote", input="w", env=env)
    unreadable = stack.machine.run("secrets", "get", f"project:{project}", "k", "--remote", env=env)
    local = stack.machine.run("secrets", "get", f"project:{project}", "k", env=env)  # no flag: the local vault

    assert (created.returncode, created.stdout) == (0, f"created project:{project} k (version 1)\n"), created.stderr
    assert (updated.returncode, updated.stdout) == (0, f"updated project:{project} k (version 2)\n"), updated.stderr
    assert unreadable.returncode == 4  # the token may write but not read
    assert local.returncode == 3  # without the flag it went to the local home, not to the API
