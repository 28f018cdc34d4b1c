"""`sprongus secrets inject` as real `sprongus` processes: templates rendered exactly, references checked before
anything is revealed, one batch reveal per scope (locally and against a real `sprongus serve`), the `--out` rules of
`export`, and no value in any error."""

from __future__ import annotations

import json
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Machine, Proc, one_error_line, run_on_terminal
from tests.e2e.test_cli_serve_login import serving
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: a pty and no OS keychain")

TOKEN, PEM, QUOTES = f"secret_abc {CANARY}", "-----BEGIN KEY-----\nabc\r\n-----END KEY-----\n", 'it\'s "q" \\n }}'
ALICE, CLIENT = "héllo wörld — 日本語 🙂 \u202e rtl", "123.apps.googleusercontent.com"
SECRETS = {("project:p1", "notion.api_token"): TOKEN, ("project:p1", "pem"): PEM, ("project:p1", "quotes"): QUOTES,
           ("user:alice", "gdocs.refresh"): ALICE, ("system", "gdocs.client_id"): CLIENT}
KEPT = "{{ sprongus }} {{ op://vault/item }} {{ sprongus:/x }} {{ .Values.image }} {{- include \"x\" . }}"
TEMPLATE = (  # repeated references, every spacing, CRLF, Unicode, no final newline
    f"# ünïcode {KEPT}\n"
    "token: {{ sprongus://project/p1/notion.api_token }}\r\n"
    "again: {{sprongus://project/p1/notion.api_token}} and {{\tsprongus://project/p1/notion.api_token\t}}\n"
    "pem: |\n{{ sprongus://project/p1/pem }}quotes: '{{ sprongus://project/p1/quotes }}'\n"
    "alice: {{ sprongus://user/alice/gdocs.refresh }}\n"
    "client: {{  sprongus://system/-/gdocs.client_id  }}\n"
    "{{ sprongus://user/alice/gdocs.refresh }}{ {}} }}{{"
)
EXPECTED = (
    f"# ünïcode {KEPT}\n"
    f"token: {TOKEN}\r\n"
    f"again: {TOKEN} and {TOKEN}\n"
    f"pem: |\n{PEM}quotes: '{QUOTES}'\n"
    f"alice: {ALICE}\n"
    f"client: {CLIENT}\n"
    f"{ALICE}" "{ {}} }}{{"
)


def seed(machine: Machine) -> None:
    value_file = machine.root / "value.txt"
    for (scope, key), value in SECRETS.items():
        value_file.write_bytes(value.encode())  # --file keeps every byte: stdin would drop PEM's final newline
        machine.ok("secrets", "set", scope, key, "--file", str(value_file))
    value_file.unlink()


def reveal_rows(machine: Machine) -> list[tuple[str, str, str, str, str, str]]:
    """(scope, key_name, outcome, time, request_id or '', detail) of every reveal audit row, oldest first."""
    with sqlite3.connect(machine.home / "vault.db") as db:
        rows = db.execute("SELECT scope, key_name, outcome, time, coalesce(request_id, ''), detail "
                          "FROM audit_event WHERE action = 'reveal' ORDER BY seq").fetchall()
    db.close()
    return rows


def batches(rows: list[tuple[str, str, str, str, str, str]], by: int) -> dict[str, set[str]]:
    """scope -> the distinct values of column `by` (3: time, 4: request id) among its rows."""
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row[0], set()).add(row[by])
    return found


def inject(machine: Machine, template: str, *args: str, env: dict[str, str] | None = None) -> Proc:
    path = machine.root / "app.tpl"
    path.write_bytes(template.encode())
    return machine.run("secrets", "inject", "-i", str(path), *args, env=env)


@pytest.fixture
def seeded(machine: Machine) -> Machine:
    seed(machine)
    return machine


def test_references_of_every_scope_are_replaced_exactly_and_other_text_is_kept(seeded: Machine) -> None:
    done = inject(seeded, TEMPLATE, "--yes")

    assert done.returncode == 0, done.stderr
    assert done.stdout_bytes == EXPECTED.encode()
    assert CANARY not in done.stderr
    rows = reveal_rows(seeded)
    # Each secret once, however often it is referenced; each scope's rows are one batch (written at one time).
    assert sorted((scope, key) for scope, key, *_ in rows) == sorted(SECRETS)
    assert {(outcome, json.loads(detail)["batch"]) for _, _, outcome, _, _, detail in rows} == {("success", True)}
    assert {scope: len(times) for scope, times in batches(rows, 3).items()} == \
        {"project:p1": 1, "user:alice": 1, "system": 1}
    scopes_in_order = [scope for scope, *_ in rows]
    assert scopes_in_order == sorted(scopes_in_order, key=scopes_in_order.index)  # contiguous: one call each


def test_stdin_template_and_a_template_without_references(seeded: Machine) -> None:
    piped = seeded.run("secrets", "inject", "-i", "-", "--yes",
                       input="a={{ sprongus://system/-/gdocs.client_id }}\n")
    plain = seeded.run("secrets", "inject", "-i", "-", input="{{ .Values.x }}\n")

    assert (piped.returncode, piped.stdout) == (0, "a=123.apps.googleusercontent.com\n")
    assert (plain.returncode, plain.stdout) == (0, "{{ .Values.x }}\n")  # nothing to reveal: nothing to confirm
    assert "no {{ sprongus://... }} reference" in plain.stderr


@pytest.mark.parametrize(("reference", "column", "rule"), [
    ("{{ sprongus://team/p1/k }}", 15, "owner type"),
    ("{{ sprongus://project/-/k }}", 23, "owner id"),
    ("{{ sprongus://project/has space/k }}", 23, "owner id"),
    ("{{ sprongus://system/x/k }}", 22, "owner id"),
    ("{{ sprongus://system//k }}", 22, "owner id"),
    ("{{ sprongus://project/p1/1bad }}", 26, "key name"),
    (f"{{{{ sprongus://project/p1/pw={CANARY} }}}}", 26, "key name"),
    ("{{ sprongus://project/p1 }}", 15, "must be {{ sprongus://"),
    ("{{ sprongus://project/p1/a/b }}", 15, "must be {{ sprongus://"),
    ("{{ SPRONGUS://project/p1/k }}", 4, "lower case"),
    ("{{ sprongus://project/p1/k", 1, "ends with }}"),
])
def test_a_malformed_reference_names_its_line_and_column_and_reveals_nothing(seeded: Machine, reference: str,
                                                                             column: int, rule: str) -> None:
    template = ("ok: {{ sprongus://project/p1/notion.api_token }}\n\r\n"
                f"£bad {reference} {CANARY} rest of line\n{{{{ sprongus://system/-/gdocs.client_id }}}}\n")
    refused = inject(seeded, template, "--yes")

    assert (refused.returncode, refused.stdout) == (2, "")
    line = one_error_line(refused.stderr, naming=f"error: template: line 3, column {column + 5}: ")
    assert rule in line and CANARY not in refused.stderr and "rest of line" not in line
    assert reveal_rows(seeded) == []  # not even the good references before it


def test_a_missing_secret_exits_3_naming_scope_and_key_and_writes_nothing(seeded: Machine) -> None:
    out = seeded.root / "out.txt"
    template = "{{ sprongus://project/p1/notion.api_token }} {{ sprongus://user/alice/no.such }}\n"
    missing = inject(seeded, template, "--yes", "-o", str(out))
    on_stdout = inject(seeded, template, "--yes")

    for proc in (missing, on_stdout):
        assert (proc.returncode, proc.stdout) == (3, "")
        one_error_line(proc.stderr, naming="secret no.such not found in user:alice")
        assert CANARY not in proc.stderr
    assert not out.exists()


def test_out_follows_the_private_file_rules_of_export(seeded: Machine, tmp_path: Path) -> None:
    template = "t={{ sprongus://project/p1/notion.api_token }}\n"
    want = f"t={TOKEN}\n"
    out = tmp_path / "app.conf"
    done = inject(seeded, template, "--yes", "-o", str(out))
    assert done.returncode == 0 and done.stdout == "" and f"injected 1 secret into {out}" in done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text() == want
    rows = len(reveal_rows(seeded))

    out.write_text("mine\n")
    again = inject(seeded, template, "--yes", "--out", str(out))
    assert again.returncode == 2 and out.read_text() == "mine\n"
    one_error_line(again.stderr, naming="--force")
    assert len(reveal_rows(seeded)) == rows  # refused before anything was revealed
    forced = inject(seeded, template, "--yes", "-o", str(out), "--force")
    assert forced.returncode == 0 and out.read_text() == want and stat.S_IMODE(out.stat().st_mode) == 0o600

    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    link = tmp_path / "link.conf"
    link.symlink_to(victim)
    through_link = inject(seeded, template, "--yes", "-o", str(link))
    assert through_link.returncode == 2 and victim.read_text() == "mine\n"
    assert inject(seeded, template, "--yes", "-o", str(link), "--force").returncode == 0
    assert not link.is_symlink() and link.read_text() == want and victim.read_text() == "mine\n"

    lonely = inject(seeded, template, "--yes", "--force")
    assert lonely.returncode == 2 and lonely.stdout == ""
    one_error_line(lonely.stderr, naming="force: only goes with --out")


def test_without_a_terminal_yes_is_required_and_on_one_the_question_names_the_counts(seeded: Machine) -> None:
    template = ("{{ sprongus://project/p1/notion.api_token }}{{ sprongus://project/p1/pem }}"
                "{{ sprongus://project/p1/pem }}{{ sprongus://system/-/gdocs.client_id }}\n")
    unconfirmed = inject(seeded, template)
    assert (unconfirmed.returncode, unconfirmed.stdout) == (4, "")
    one_error_line(unconfirmed.stderr, naming="--yes")
    (seeded.root / "app.tpl").write_text(template)
    args = ["secrets", "inject", "-i", "app.tpl"]
    refused_code, refused_screen = run_on_terminal(seeded, args, [(b"[y/N]", b"n\n")])
    assert refused_code == 4 and CANARY.encode() not in refused_screen
    assert reveal_rows(seeded) == []
    code, screen = run_on_terminal(seeded, args, [(b"[y/N]", b"y\n")])
    assert code == 0 and b"Reveal 3 secrets from 2 scopes into standard output?" in screen
    assert CANARY.encode() in screen


def test_remote_reads_each_scope_with_one_batch_request(seeded: Machine, tmp_path: Path) -> None:
    token = seeded.ok("tokens", "create", "--subject", "alice", "--project", "p1", "--scope", "secrets:read",
                      "--scope", "secrets:reveal", "--scope", "secrets:admin").stdout.strip()
    log = tmp_path / "serve.log"
    with serving(seeded, log) as (port, _):
        remote = {"SPRONGUS_API_URL": f"http://127.0.0.1:{port}", "SPRONGUS_TOKEN": token,
                  "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
        done = inject(seeded, TEMPLATE, "--yes", "--remote", env=remote)
        missing = inject(seeded, "{{ sprongus://project/p1/no.such }}", "--yes", "--remote", env=remote)
    served = log.read_text(errors="replace")

    assert done.returncode == 0, done.stderr
    assert done.stdout_bytes == EXPECTED.encode()
    assert served.count("POST /v1/secrets:reveal") == 3 + 1, served  # one per scope, then one for `missing`
    assert ":reveal HTTP" not in served.replace("/v1/secrets:reveal HTTP", "")  # no single reveal at all
    rows = [row for row in reveal_rows(seeded) if row[2] == "success"]
    request_ids = batches(rows, 4)
    assert {scope: len(ids) for scope, ids in request_ids.items()} == {"project:p1": 1, "user:alice": 1, "system": 1}
    assert len(set.union(*request_ids.values())) == 3 and "" not in set.union(*request_ids.values())
    assert missing.returncode == 3
    one_error_line(missing.stderr, naming="no.such")
    for text in (served, done.stderr, missing.stderr):
        assert CANARY not in text
