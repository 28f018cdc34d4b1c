"""The Python examples of docs/sdk.md run as written, in order, in one session, against the real API served on
loopback (SPRONGUS_API_URL and SPRONGUS_TOKEN set, as the page says), and every `print` with an inline `# expected`
comment prints exactly that. A block marked `<!-- not run: REASON -->` just above its fence is skipped (it needs
an identity provider or a cluster); shell blocks follow tests/e2e/test_docs_examples.py's rules."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.unit.client_server import served_api

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<body>.*?)```", re.S)
_NOT_RUN = re.compile(r"<!-- not run: (?P<reason>.+?) -->")
_PRINT = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s+# (?P<expected>.*?)(\s{3,}\(.*)?$")
SEEDED = {"notion.api_token": "ntn_example", "notion.workspace_id": "ws_42", "stripe.secret_key": "sk_test_example"}


def python_blocks(text: str) -> list[tuple[str, str | None]]:
    """(code, not-run reason or None) of every ```python block."""
    blocks = []
    for match in _BLOCK.finditer(text):
        reason = _NOT_RUN.fullmatch(match["before"].strip())
        blocks.append((match["body"], reason["reason"] if reason else None))
    return blocks


def _checked(block: str) -> str:
    lines = []
    for line in block.splitlines():
        match = _PRINT.match(line)
        if match:
            line = f"{match['indent']}_expect({match['args']}, expected={match['expected'].strip()!r})"
        lines.append(line)
    return "\n".join(lines)


def _expect(*args: object, expected: str) -> None:
    printed = " ".join(str(arg) for arg in args)
    assert printed == expected, (printed, expected)


def test_the_sdk_examples_run_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    run = [code for code, reason in blocks if reason is None]
    assert len(run) >= 6 and all(reason for _, reason in blocks if reason is not None)
    with served_api() as api:
        api.seed("project:shop", SEEDED)
        monkeypatch.setenv("SPRONGUS_API_URL", api.url)
        monkeypatch.setenv("SPRONGUS_TOKEN", api.token("docs-example"))
        monkeypatch.delenv("SPRONGUS_OIDC_TOKEN_FILE", raising=False)
        namespace: dict[str, object] = {"_expect": _expect, "__name__": "sdk_example"}
        checks = 0
        for code in run:
            checks += len([line for line in code.splitlines() if _PRINT.match(line)])
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(_checked(code), str(DOC), "exec"), namespace)  # our own documentation
        assert checks >= 12
        assert len(api.paths("POST")) > 5  # the examples did talk to the API


def test_the_block_reader_sees_the_not_run_marker() -> None:
    text = "x\n```python\na = 1\n```\n<!-- not run: needs a cluster -->\n```python\nb = 2\n```\n"
    assert python_blocks(text) == [("a = 1\n", None), ("b = 2\n", "needs a cluster")]
