"""Runs the curl examples of docs/api.md against a real `sprongus serve`, started by the page itself.

Same conventions as tests/e2e/test_docs_examples.py (```sh blocks must succeed; ```console blocks are `$ command`
lines with their expected output, `...` matching anything; other blocks are not run). The page runs top to bottom
in one bash process in a temporary directory with its own SPRONGUS_HOME and no OS keychain. Its server listens on
port 8000 in the text; the test moves it to a free port, and ends the server (the page's own process group) at the
end whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.gunicorn.conftest import free_port
from tests.e2e.test_docs_examples import MARK, _clean, matches, page_env, parse, script_for, split_transcript

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux, bash and curl")

PAGE = Path(__file__).resolve().parents[3] / "docs" / "api.md"
ENDPOINTS = [("PUT", "/secrets/project/acme/"), ("GET", "/secrets/project/acme/"), ("GET", "/secrets?"),
             ("DELETE", "/secrets/project/acme/"), ("POST", ":reveal"), ("POST", "/secrets:redeem"),
             ("POST", ":rotate"), ("POST", "/secrets:import"), ("GET", "/secrets:export?"), ("GET", "/openapi.json")]


def run_page(text: str, workdir: Path) -> tuple[dict[str, list[str]], dict[str, int], str]:
    env = page_env(workdir)
    log = workdir / "transcript.txt"
    with log.open("wb") as out:  # a file, not a pipe: the page's background server would hold a pipe open
        proc = subprocess.Popen(["bash", "-c", script_for(parse(text))], cwd=workdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the page's server, if an example failed before stopping it
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # curl prints a body without a final newline, so a marker may follow it on the same line: split it off.
    transcript = log.read_text(encoding="utf-8", errors="replace").replace(MARK, "\n" + MARK)
    outputs, codes = split_transcript(transcript)
    return outputs, codes, transcript


def test_api_examples_run_as_documented_against_sprongus_serve(tmp_path: Path) -> None:
    port = free_port()
    text = PAGE.read_text(encoding="utf-8").replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
        "--port 8000", f"--port {port}")
    blocks = parse(text)
    outputs, codes, transcript = run_page(text, tmp_path)
    problems = []
    for b, block in enumerate(blocks):
        if block.kind == "sh":
            if f"sh {b}" not in codes:
                tail = "\n".join(outputs.get(f"sh {b}", [])[-15:])
                problems.append(f"docs/api.md:{block.line}: sh block failed; its output ends with:\n{tail}")
                break
            continue
        for c, command in enumerate(block.commands):
            tag = f"{b}.{c}"
            if tag not in codes:
                problems.append(f"docs/api.md:{command.line}: `{command.text}` did not run")
                break
            actual, expected = _clean(outputs.get(f"cmd {tag}", [])), _clean(command.expected)
            if codes[tag] != 0:
                problems.append(f"docs/api.md:{command.line}: `{command.text}` exited {codes[tag]}")
            if not matches(expected, actual):
                problems.append(f"docs/api.md:{command.line}: `{command.text}`\n--- expected\n{expected}\n"
                                f"--- actual\n{actual}")
    assert not problems, "\n\n".join(problems) + (f"\n\n(full transcript)\n{transcript}" if len(problems) > 3
                                                   else "")


def test_every_endpoint_has_a_curl_example() -> None:
    commands = [c.text for block in parse(PAGE.read_text(encoding="utf-8")) if block.kind == "console"
                for c in block.commands if c.text.startswith("curl")]
    for method, path in ENDPOINTS:
        verb = re.compile(rf"-X {method}\b") if method != "GET" else re.compile(r"^(?!.*-X (PUT|POST|DELETE))")
        assert any(path in c and verb.search(c) for c in commands), f"no curl example for {method} ...{path}"
