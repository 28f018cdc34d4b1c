"""The Python examples of docs/scopes-and-keys.md run as written, in order, in one session, and every `print` with
an inline `# expected` comment prints exactly that (the comment up to a run of spaces and a parenthesis)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "scopes-and-keys.md"
_PRINT = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s+# (?P<expected>.*?)(\s{3,}\(.*)?$")


def _checked(block: str) -> str:
    """Each commented print becomes a check of its output."""
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


def test_the_python_examples_run_as_documented() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"_expect": _expect}
    checks = 0
    for block in blocks:
        checks += len([line for line in block.splitlines() if _PRINT.match(line)])
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(_checked(block), str(DOC), "exec"), namespace)  # our own documentation
    assert checks >= 15
