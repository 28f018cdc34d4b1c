"""`secrets export --format dotenv|json|shell --reveal` and `secrets run`'s batch read, as real `sprongus` processes.

Every format must give back each value exactly, read the way its users read it: python-dotenv for dotenv, bash's
`source` and `eval` for shell, a JSON parser for json. `--remote` runs against a real `sprongus serve`, where one
batch request (not one reveal per secret) is what the access log and the audit rows must show.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.e2e.conftest import SCOPE, Machine, one_error_line, run_on_terminal
from tests.e2e.test_cli_serve_login import serving
from tests.harness import CANARY

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux: bash, a pty and no OS keychain")

# key -> value: what quoting must survive. Variable names: `notion.api_token` -> NOTION_API_TOKEN.
NASTY = {
    "single.quote": "it's 'quoted'",
    "double.quote": 'say "hi" \\"there\\"',
    "newlines": "line one\nline two\n\nlast\n",
    "crlf": "dos\r\nline\rcarriage",
    "dollar": "pa$$word $HOME `id` $(id) !!",
    "braces": "x${HOME}y ${UNSET:-default}",
    "backslash": "C:\\path\\to\\n\\t\\",
    "trailing.backslash": "ends with \\",
    "unicode": "héllo wörld — 日本語 🙂 \u202e rtl",
    "tabs": "a\tb\x0bc\x0cd\x07e\x08f",
    "hash": "#not a comment # x",
    "spaces": "  leading and trailing  ",
    "equals": "a=b=c",
    "empty": "",
    "canary": CANARY,
}


def env_var(key: str) -> str:
    return key.replace(".", "_").replace("-", "_").upper()


EXPECTED = {env_var(k): v for k, v in NASTY.items()}


@pytest.fixture(scope="module")
def nasty(tmp_path_factory: pytest.TempPathFactory) -> Machine:
    machine = Machine(tmp_path_factory.mktemp("nasty"))
    source = machine.root / "nasty.json"
    source.write_text(json.dumps(NASTY))
    machine.ok("secrets", "import", "--file", str(source), "--scope", SCOPE, "--allow-plaintext")
    source.unlink()
    return machine


def export(machine: Machine, fmt: str, *extra: str) -> str:
    return machine.ok("secrets", "export", SCOPE, "--format", fmt, "--reveal", "--yes", *extra).stdout


def reveal_rows(machine: Machine) -> list[tuple[str, str, str, str]]:
    """(request_id or '', key_name, outcome, detail) of every reveal audit row, oldest first."""
    with sqlite3.connect(machine.home / "vault.db") as db:
        rows = db.execute("SELECT coalesce(request_id, ''), coalesce(key_name, ''), outcome, coalesce(detail, '') "
                          "FROM audit_event WHERE action = 'reveal' ORDER BY seq").fetchall()
    db.close()
    return rows


def bash_reads(script: str, names: list[str], cwd: Path) -> dict[str, str]:
    """What bash has in `names` after `script`, read back through the environment of a child process."""
    dump = f"{sys.executable} -c 'import json, os, sys; print(json.dumps({{n: os.environ[n] for n in sys.argv[1:]}}))'"
    done = subprocess.run(["bash", "-c", f"set -e\n{script}\n{dump} {' '.join(names)}"], capture_output=True,
                          cwd=cwd, env={"PATH": os.environ["PATH"], "HOME": str(cwd)}, check=True, timeout=30)
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_dotenv_reads_back_exactly_with_python_dotenv_and_sprongus_import(nasty: Machine, tmp_path: Path) -> None:
    out = tmp_path / "app.env"
    done = nasty.ok("secrets", "export", SCOPE, "--format", "dotenv", "--reveal", "--yes", "--out", str(out))

    assert dict(dotenv_values(out, interpolate=False)) == EXPECTED
    expanding = {"BRACES"}  # python-dotenv expands ${...} even inside quotes; there is no escape for it
    interpolated = dotenv_values(out)
    assert {k: interpolated[k] for k in EXPECTED if k not in expanding} == \
        {k: v for k, v in EXPECTED.items() if k not in expanding}
    assert "warning: the values of braces hold ${" in done.stderr and "interpolate=False" in done.stderr
    assert CANARY not in done.stderr
    assert len(out.read_text().splitlines()) == len(NASTY)  # one line per variable: raw CRs would not survive
    nasty.ok("secrets", "import", "--file", str(out), "--scope", "project:again", "--allow-plaintext")
    again = json.loads(nasty.ok("secrets", "export", "project:again", "--format", "json", "--reveal",
                                "--yes").stdout)
    assert again == EXPECTED


def test_shell_lines_give_back_every_value_to_source_and_eval(nasty: Machine, tmp_path: Path) -> None:
    text = export(nasty, "shell")
    assert text.startswith("export BACKSLASH='") and text.endswith("'\n")
    script = tmp_path / "secrets.sh"
    script.write_text(text)
    names = sorted(EXPECTED)
    assert bash_reads(f"source {script}", names, tmp_path) == EXPECTED
    command = " ".join([*nasty.argv("secrets", "export", SCOPE, "--format", "shell", "--reveal", "--yes")])
    env = " ".join(f"{k}='{v}'" for k, v in nasty.env().items() if k in ("SPRONGUS_HOME", "HOME", "XDG_CONFIG_HOME",
                                                                         "XDG_DATA_HOME", "XDG_RUNTIME_DIR"))
    assert bash_reads(f'eval "$(env {env} {command})"', names, tmp_path) == EXPECTED


def test_json_is_an_object_of_variables(nasty: Machine) -> None:
    text = export(nasty, "json")
    assert json.loads(text) == EXPECTED
    assert list(json.loads(text)) == [env_var(k) for k in sorted(NASTY)]  # in key order


def test_a_prefix_narrows_the_export_and_the_batch_is_audited_per_key(nasty: Machine) -> None:
    before = len(reveal_rows(nasty))
    assert json.loads(export(nasty, "json", "--prefix", "double")) == {"DOUBLE_QUOTE": NASTY["double.quote"]}
    rows = reveal_rows(nasty)[before:]
    assert [(key, outcome) for _, key, outcome, _ in rows] == [("double.quote", "success")]
    assert json.loads(rows[0][3]) == {"batch": True}


def test_nul_is_refused_by_key_for_shell_and_dotenv_but_not_json(machine: Machine) -> None:
    source = machine.root / "nul.json"
    source.write_text(json.dumps({"has.nul": f"{CANARY}\x00tail", "plain": "ok"}))
    machine.ok("secrets", "import", "--file", str(source), "--scope", SCOPE, "--allow-plaintext")
    for fmt in ("shell", "dotenv"):
        refused = machine.run("secrets", "export", SCOPE, "--format", fmt, "--reveal", "--yes")
        assert refused.returncode == 2 and refused.stdout == ""
        assert "has.nul" in one_error_line(refused.stderr, naming="NUL") and CANARY not in refused.stderr
    assert json.loads(export(machine, "json")) == {"HAS_NUL": f"{CANARY}\x00tail", "PLAIN": "ok"}


def test_keys_naming_the_same_variable_are_refused_before_anything_is_revealed(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, "db.url", CANARY)
    machine.ok("secrets", "set", SCOPE, "DB_URL", CANARY)
    refused = machine.run("secrets", "export", SCOPE, "--format", "dotenv", "--reveal", "--yes")
    assert refused.returncode == 2 and refused.stdout == ""
    line = one_error_line(refused.stderr, naming="DB_URL")
    assert "db.url" in line and CANARY not in line
    assert reveal_rows(machine) == []


def test_hook_variables_are_refused_for_sourced_formats_unless_allowed(machine: Machine) -> None:
    """A dotenv or shell export is sourced into someone's environment: a writer of the scope must not be able to
    plant LD_PRELOAD or PATH there, as `secrets run` refuses them."""
    machine.ok("secrets", "set", SCOPE, "ld_preload", CANARY)
    refused = {fmt: machine.run("secrets", "export", SCOPE, "--format", fmt, "--reveal", "--yes")
               for fmt in ("shell", "dotenv")}
    revealed_by_refusals = reveal_rows(machine)
    allowed = export(machine, "shell", "--allow-env", "LD_PRELOAD")

    for proc in refused.values():
        assert proc.returncode == 2 and proc.stdout == ""
        line = one_error_line(proc.stderr, naming="--allow-env LD_PRELOAD")
        assert "ld_preload" in line and CANARY not in line
    assert revealed_by_refusals == []  # refused on the names, before anything was revealed
    assert f"export LD_PRELOAD='{CANARY}'" in allowed
    assert json.loads(export(machine, "json")) == {"LD_PRELOAD": CANARY}  # JSON is not sourced


@pytest.mark.parametrize(("args", "field"), [
    (["--format", "dotenv"], "reveal"),  # values leave only on the explicit flag
    (["--reveal", "--yes"], "format"),
    (["--reveal", "--yes", "--format", "json", "--bundle"], "reveal"),
    (["--reveal", "--yes", "--format", "json", "--force"], "force"),
])
def test_flag_rules_name_the_flag_and_reveal_nothing(machine: Machine, args: list[str], field: str) -> None:
    machine.ok("secrets", "set", SCOPE, "k", CANARY)
    refused = machine.run("secrets", "export", SCOPE, *args)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert one_error_line(refused.stderr).startswith(f"error: {field}: ")
    assert reveal_rows(machine) == []


def test_without_a_terminal_yes_is_required_and_on_one_the_question_is_asked(machine: Machine) -> None:
    machine.ok("secrets", "set", SCOPE, "k", CANARY)
    unconfirmed = machine.run("secrets", "export", SCOPE, "--format", "json", "--reveal")
    assert unconfirmed.returncode == 4 and CANARY not in unconfirmed.stdout
    one_error_line(unconfirmed.stderr, naming="--yes")
    args = ["secrets", "export", SCOPE, "--format", "shell", "--reveal"]
    refused_code, refused_screen = run_on_terminal(machine, args, [(b"[y/N]", b"n\n")])
    assert refused_code == 4 and CANARY.encode() not in refused_screen
    assert reveal_rows(machine) == []
    code, screen = run_on_terminal(machine, args, [(b"[y/N]", b"y\n")])
    assert code == 0 and b"Reveal the values of project:p1 into standard output?" in screen
    assert f"export K='{CANARY}'".encode() in screen


def test_out_follows_the_private_file_rules(machine: Machine, tmp_path: Path) -> None:
    machine.ok("secrets", "set", SCOPE, "k", CANARY)
    out = tmp_path / "secrets.env"
    done = machine.ok("secrets", "export", SCOPE, "--format", "dotenv", "--reveal", "--yes", "--out", str(out))
    assert done.stdout == "" and f"exported 1 secret to {out}" in done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text() == f'K="{CANARY}"\n'
    rows = len(reveal_rows(machine))

    again = machine.run("secrets", "export", SCOPE, "--format", "json", "--reveal", "--yes", "--out", str(out))
    assert again.returncode == 2
    one_error_line(again.stderr, naming="--force")
    assert out.read_text() == f'K="{CANARY}"\n' and len(reveal_rows(machine)) == rows  # refused before reading

    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    link = tmp_path / "link.env"
    link.symlink_to(victim)
    through_link = machine.run("secrets", "export", SCOPE, "--format", "json", "--reveal", "--yes", "--out",
                               str(link))
    assert through_link.returncode == 2 and victim.read_text() == "mine\n"
    machine.ok("secrets", "export", SCOPE, "--format", "json", "--reveal", "--yes", "--out", str(link), "--force")
    assert link.is_file() and not link.is_symlink() and victim.read_text() == "mine\n"
    assert json.loads(link.read_text()) == {"K": CANARY} and stat.S_IMODE(link.stat().st_mode) == 0o600


def test_remote_run_and_export_read_fifty_secrets_with_one_batch_request_each(machine: Machine,
                                                                              tmp_path: Path) -> None:
    values = {f"app.k{i:02d}": f"{CANARY}-{i}" for i in range(50)}
    source = tmp_path / "fifty.json"
    source.write_text(json.dumps(values))
    machine.ok("secrets", "import", "--file", str(source), "--scope", SCOPE, "--allow-plaintext")
    token = machine.ok("tokens", "create", "--subject", "alice", "--project", "p1", "--scope", "secrets:read",
                       "--scope", "secrets:reveal").stdout.strip()
    log = tmp_path / "serve.log"
    dump = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('APP_')}))"
    with serving(machine, log) as (port, _):
        remote = {"SPRONGUS_REMOTE": "1", "SPRONGUS_API_URL": f"http://127.0.0.1:{port}", "SPRONGUS_TOKEN": token,
                  "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
        ran = machine.run("secrets", "run", SCOPE, "--", sys.executable, "-c", dump, env=remote)
        after_run = reveal_rows(machine)
        exported = machine.run("secrets", "export", SCOPE, "--format", "json", "--reveal", "--yes", env=remote)
    served = log.read_text(errors="replace")

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {env_var(k): v for k, v in values.items()}
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {env_var(k): v for k, v in values.items()}
    assert served.count("POST /v1/secrets:reveal") == 2, served  # one for run, one for export
    assert ":reveal HTTP" not in served.replace("/v1/secrets:reveal HTTP", "")  # no single reveal at all
    request_ids = {rid for rid, _, outcome, _ in reveal_rows(machine) if outcome == "success"}
    assert len(request_ids) == 2
    assert sorted(key for _, key, _, _ in after_run) == sorted(values)
    assert len({rid for rid, _, _, _ in after_run}) == 1
    assert CANARY not in served
