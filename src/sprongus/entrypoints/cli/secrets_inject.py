"""`sprongus secrets inject`: a template with its `{{ sprongus://TYPE/ID/KEY }}` references replaced by values."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sprongus.domain.errors import ValidationError
from sprongus.entrypoints.cli.output import info
from sprongus.entrypoints.cli.secrets_transfer import _exists, _write_private
from sprongus.entrypoints.cli.state import CliState, pass_state, remote_option

STDIN = "-"


@remote_option
@click.command("inject")
@click.option("-i", "--in-file", "template", required=True,
              type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="The template to render; - reads it from standard input.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this new file (mode 0600) instead of stdout.")
@click.option("--force", is_flag=True, help="With --out: replace the file if it exists.")
@click.option("--yes", is_flag=True, help="Confirm the reveal without a prompt (required without a terminal).")
@pass_state
def inject_command(state: CliState, template: Path, out: Path | None, force: bool, yes: bool) -> None:
    """Render a template: each {{ sprongus://TYPE/ID/KEY }} becomes that secret's value (audited as a reveal).

    Every reference is checked before anything is revealed; then one batch reveal per scope reads the values.
    Any other text, other {{ ... }} included, is copied unchanged.
    """
    if force and out is None:
        raise ValidationError("force", "only goes with --out")
    if out is not None and not force and os.path.lexists(out):
        raise _exists()  # early, so a refused render reveals nothing (the write checks again)
    from sprongus.entrypoints.cli import inject_template as tpl  # loads the domain's values: not for --help
    from sprongus.entrypoints.cli.secrets_basic import confirm_reveal
    from sprongus.service.batch_reveal import reveal_keys

    parsed = tpl.parse(tpl.decode(_read(template)))
    wanted = parsed.wanted()
    count = sum(len(keys) for keys in wanted.values())
    if wanted:
        confirm_reveal(f"Reveal {_plural(count, 'secret')} from {_plural(len(wanted), 'scope')} into "
                       f"{out or 'standard output'}?", yes)
    else:  # likely a mistyped reference: say so rather than copy it in silence
        click.echo("warning: the template holds no {{ sprongus://... }} reference; it is copied unchanged",
                   err=True)
    # One reveal_many per scope (per 1,000 keys): one rate-limit hit and one request id per scope, a row per secret.
    # A missing key raises NotFound naming it and its scope, before anything is written.
    values = {(scope, key): value for scope, keys in wanted.items()
              for key, value in reveal_keys(state.api, scope, keys).items()}
    text = parsed.render(values)
    if out is None:
        # Bytes, not text: the template's UTF-8 goes out unchanged whatever the locale's encoding or newlines.
        click.echo(text.encode("utf-8"), nl=False)
        return
    _write_private(out, text, force)
    info(f"injected {_plural(count, 'secret')} into {out}")


def _read(template: Path) -> bytes:
    if str(template) == STDIN:
        return sys.stdin.buffer.read()
    try:
        return template.read_bytes()
    except OSError as exc:
        raise ValidationError("in-file", f"cannot read {template}: {exc.strerror or type(exc).__name__}") from None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
