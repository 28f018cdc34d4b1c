"""Output for people (aligned text) and for scripts (--json). Never a value unless revealed on purpose."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sprongus.domain.records import SecretView


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def describe(view: SecretView) -> str:
    """A record for people. Every field but a revealed value goes through `plain`: the value is printed as it is
    (what was asked for, a PEM's lines included), the rest is text anyone who may write the scope chose (meta) or
    an API sent."""
    data = view.to_dict()
    rows = [("scope", data["scope"]), ("key", data["keyName"]), ("version", str(data["version"])),
            ("created", data["createdAt"]), ("updated", data["updatedAt"]),
            ("rotated", data["lastRotatedAt"] or "never"), ("meta", format_meta(view.meta) or "-")]
    lines = [f"{name + ':':<9} {plain(value)}" for name, value in rows]
    lines.insert(2, f"{'value:':<9} {data['value']}")
    return "\n".join(lines)


def plain(text: object) -> str:
    """One line of `text` that a terminal shows and does not obey: control characters (ESC, OSC 52's clipboard
    writes, a carriage return that redraws the line) and invisible format characters are written as escapes."""
    from sprongus.domain.text import one_printable_line

    return one_printable_line(str(text))


def format_meta(meta: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(meta.items()))


def is_quiet() -> bool:
    """Whether the running command was given the root's -q (CliState.quiet); outside a command, no. Read off the
    root context's object rather than through cli/state.py, which imports cli/login.py, which prints through here."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and bool(getattr(ctx.find_root().obj, "quiet", False))


def info(message: str, *, err: bool = True) -> None:
    """A confirmation or notice (`created ...`, `no secrets in ...`): -q drops it. Errors and warnings never come
    through here, so -q cannot hide what the user has to act on."""
    if not is_quiet():
        click.echo(message, err=err)


# Cells of a state column that deserve a glance; anything else stays plain.
STATE_STYLES: dict[str, dict[str, Any]] = {
    "revoked": {"fg": "red"}, "expired": {"dim": True}, "DAMAGED": {"fg": "red", "bold": True},
    "not available to this provider": {"fg": "red"}, "old: run keys rotate-master": {"fg": "yellow"},
    "old: no secret uses it": {"dim": True},
}


def use_color() -> bool:
    """Colour only for a person: stdout a terminal and NO_COLOR unset (no-color.org). Pipes, files and CI logs get
    no escape codes at all, so a `grep` or a parser never meets one."""
    from sprongus.entrypoints.env_flags import no_color

    return sys.stdout.isatty() and not no_color()


def table(headers: list[str], rows: list[list[str]], states: tuple[str, ...] = ()) -> str:
    """Aligned columns, the header in capitals; on a terminal the header is bold and the cells of the `states`
    columns are coloured by STATE_STYLES. Widths come from the plain text: escape codes take no room on screen.
    Every cell goes through `plain`: a cell is a key's meta, a token's subject or an API's answer, not ours."""
    headers = [plain(h) for h in headers]
    rows = [[plain(c) for c in row] for row in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    color = use_color()
    coloured = {i for i, h in enumerate(headers) if h in states} if color else set()

    def cell(text: str, width: int, style: dict[str, Any] | None) -> str:
        return (click.style(text, **style) if style else text) + " " * (width - len(text))

    lines = ["  ".join(cell(h.upper(), w, {"bold": True} if color else None)
                       for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines += ["  ".join(cell(str(c), w, STATE_STYLES.get(str(c)) if i in coloured else None)
                        for i, (c, w) in enumerate(zip(row, widths, strict=False))).rstrip() for row in rows]
    return "\n".join(lines)


@contextmanager
def progress(label: str, total: Callable[[], int] | None = None) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress bar on stderr when it is a terminal; otherwise no callback at all.

    Work whose service reports no total as it goes (a scope's rotation) passes `total`: it is counted once, up
    front and on a terminal only (scripts pay nothing), so that the long commands all show the same bar. Without
    either, the count is rewritten in place.
    """
    if not sys.stderr.isatty() or is_quiet():
        yield None
        return
    state: dict[str, Any] = {"bar": None, "done": 0}

    def start(length: int) -> None:
        bar: Any = click.progressbar(length=length, label=label, file=sys.stderr)
        bar.__enter__()
        state["bar"] = bar

    def update(done: int, known: int | None) -> None:
        if known is None and state["bar"] is None:  # unknown length: a counter rewritten in place
            click.echo(f"\r{label}: {done}", nl=False, err=True)
            state["counter"] = True
            return
        if state["bar"] is None:
            start(known or done)
        state["bar"].update(done - state["done"])
        state["done"] = done

    counted = total() if total is not None else 0
    if counted > 0:
        start(counted)
    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
        elif state.get("counter"):
            click.echo("", err=True)
