"""Output for people (aligned text) and for scripts (--json). Never a value unless revealed on purpose."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from sprongus.domain.records import SecretView


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def describe(view: SecretView) -> str:
    data = view.to_dict()
    rows = [("scope", data["scope"]), ("key", data["keyName"]), ("value", data["value"]),
            ("version", str(data["version"])), ("created", data["createdAt"]), ("updated", data["updatedAt"]),
            ("rotated", data["lastRotatedAt"] or "never"), ("meta", format_meta(view.meta) or "-")]
    return "\n".join(f"{name + ':':<9} {value}" for name, value in rows)


def format_meta(meta: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(meta.items()))


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    return "\n".join(lines)


@contextmanager
def progress(label: str, total: Callable[[], int] | None = None) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress bar on stderr when it is a terminal; otherwise no callback at all.

    Work whose service reports no total as it goes (a scope's rotation) passes `total`: it is counted once, up
    front and on a terminal only (scripts pay nothing), so that the long commands all show the same bar. Without
    either, the count is rewritten in place.
    """
    if not sys.stderr.isatty():
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
