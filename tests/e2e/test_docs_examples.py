"""Runs the shell examples of docs/cli.md and docs/providers-secrets.md with the real `sprongus` command.

Convention in those pages:

- A ```sh block is run as written (bash, `set -e -o pipefail`): set-up and commands whose output is not shown.
  It must succeed.
- A ```console block holds `$ COMMAND` lines, each followed by its expected output (stdout and stderr as they
  interleave). `...` in the expected output matches any text (times, paths, generated keys). A command must exit 0,
  unless the next command is `echo $?`, whose expected output then shows the exit code.
- Other blocks (```text, ```json, ```dotenv) are not run.

Every page runs top to bottom in one bash process (so `cd`, `export` and files carry over), in a temporary
directory with its own SPRONGUS_HOME and TMPDIR, the venv's bin dir first on PATH, and no OS keychain (the file key
provider's fallback, as on a headless machine), so nothing touches the developer's own vault or keychain.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("cli.md", "providers-secrets.md")
MARK = "::sprongus-doc-test::"
FENCE = re.compile(r"^```([A-Za-z]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


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


def parse(markdown: str) -> list[Block]:
    blocks = []
    for match in FENCE.finditer(markdown):
        kind, body = match.group(1), match.group(2)
        line = markdown.count("\n", 0, match.start()) + 1
        if kind == "sh":
            blocks.append(Block("sh", line, body=body))
        elif kind == "console":
            blocks.append(Block("console", line, commands=_console_commands(body, line)))
    return blocks


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


def run_page(name: str, workdir: Path) -> tuple[list[Block], dict[str, list[str]], dict[str, int], str]:
    blocks = parse((ROOT / "docs" / name).read_text(encoding="utf-8"))
    done = subprocess.run(["bash", "-c", script_for(blocks)], cwd=workdir, env=page_env(workdir),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=180, check=False)
    outputs, codes = split_transcript(done.stdout)
    return blocks, outputs, codes, done.stdout


def page_env(workdir: Path) -> dict[str, str]:
    """A clean environment for a page: the venv first on PATH, its own home and tmp, no OS keychain."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               SPRONGUS_HOME=str(workdir / "home"), TMPDIR=str(workdir), LC_ALL="C.UTF-8",
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", COLUMNS="120")
    return env


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


@pytest.mark.parametrize("name", DOCS)
def test_examples_run_as_documented(name: str, tmp_path: Path) -> None:
    start = time.monotonic()
    blocks, outputs, codes, transcript = run_page(name, tmp_path)
    elapsed = time.monotonic() - start
    assert any(b.kind == "console" for b in blocks), f"docs/{name} has no console examples"
    problems = []
    for b, block in enumerate(blocks):
        if block.kind == "sh":
            if f"sh {b}" not in codes:
                tail = "\n".join(outputs.get(f"sh {b}", [])[-15:])
                problems.append(f"docs/{name}:{block.line}: sh block failed; its output ends with:\n{tail}")
                break  # later examples depend on this one
            continue
        for c, command in enumerate(block.commands):
            tag = f"{b}.{c}"
            if tag not in codes:
                problems.append(f"docs/{name}:{command.line}: `{command.text}` did not run")
                break
            actual = _clean(outputs.get(f"cmd {tag}", []))
            expected = _clean(command.expected)
            nxt = block.commands[c + 1].text.strip() if c + 1 < len(block.commands) else ""
            if codes[tag] != 0 and nxt != "echo $?":
                problems.append(f"docs/{name}:{command.line}: `{command.text}` exited {codes[tag]} "
                                "(show it with a following `$ echo $?`)")
            if not matches(expected, actual):
                problems.append(f"docs/{name}:{command.line}: `{command.text}`\n--- expected\n{expected}\n"
                                f"--- actual\n{actual}")
    assert not problems, "\n\n".join(problems) + (f"\n\n(full transcript)\n{transcript}" if len(problems) > 3
                                                   else "")
    print(f"docs/{name}: {sum(len(b.commands) for b in blocks)} console commands in {elapsed:.1f} s")


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
    missing = []
    for path, command in _all_commands(cli):
        if f"sprongus {' '.join(path)}" not in text:
            missing.append("sprongus " + " ".join(path))
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
    blocks = parse("```console\n$ a \\\n> b\nout ...\n$ echo $?\n3\n```\n```sh\nx=1\n```\n```text\n$ no\n```\n")
    assert [b.kind for b in blocks] == ["console", "sh"]
    first, second = blocks[0].commands
    assert first.text == "a \\\nb" and first.expected == ["out ..."]
    assert second.text == "echo $?" and second.expected == ["3"]
    assert matches("created: ...Z\nok", "created: 2026-01-01T00:00:00Z\nok")
    assert not matches("created: ...Z", "created: 2026-01-01T00:00:00Z\nextra")
