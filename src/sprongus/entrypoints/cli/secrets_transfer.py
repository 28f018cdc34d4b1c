"""`sprongus secrets import|export`."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import click

from sprongus.domain.errors import ValidationError
from sprongus.domain.scope import Scope
from sprongus.entrypoints.cli.output import emit_json, info, plain, progress
from sprongus.entrypoints.cli.params import PREFIX, SCOPE
from sprongus.entrypoints.cli.state import CliState, pass_state, remote_option
from sprongus.entrypoints.cli.values import read_passphrase


@remote_option
@click.command("import")
@click.option("--file", "file", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The dotenv, JSON or bundle file to import.")
@click.option("--format", "format_", type=click.Choice(["json", "dotenv", "bundle"]), help="Default: from the file.")
@click.option("--scope", type=SCOPE, help="Scope for dotenv and {KEY: value} JSON files.")
# Two flags rather than one option with two flag values: with one, `--merge --replace` silently meant the last.
@click.option("--merge", is_flag=True, help="Upsert the items (the default).")
@click.option("--replace", is_flag=True, help="Also delete keys of the scope the file lacks.")
@click.option("--prefix", type=PREFIX, default="",
              help="Every imported key must start with it; --replace deletes only under it.")
@click.option("--allow-plaintext", is_flag=True, help="Accept a plaintext (dotenv/JSON) file.")
@click.option("--dry-run", is_flag=True, help="Show what would be added, changed and removed; write nothing.")
@click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False), help="For a passphrase bundle.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON: added, updated, removed ({scope, keyName} each) and dryRun.")
@pass_state
def import_command(state: CliState, file: Path, format_: str | None, scope: Scope | None, merge: bool,
                   replace: bool, prefix: str, allow_plaintext: bool, dry_run: bool,
                   passphrase_file: Path | None, as_json: bool) -> None:
    """Import secrets from a dotenv, JSON or bundle file (all or nothing)."""
    if merge and replace:
        raise ValidationError("mode", "give either --merge or --replace, not both")
    mode = "replace" if replace else "merge"
    from sprongus.entrypoints.cli import import_formats as fmt  # the parsers load the domain: not for --help

    text = fmt.read_text(file)
    kind = format_ or fmt.guess_format(file, text)
    items, bundle = None, None
    if kind == "bundle":
        bundle = fmt.parse_bundle(text, passphrase_file)
    else:
        if not allow_plaintext:  # refuse before parsing: nothing of the file's values is touched
            raise ValidationError("plaintext", f"{kind} files hold plaintext; pass --allow-plaintext to import")
        items = fmt.parse_dotenv(text, scope, prefix) if kind == "dotenv" else fmt.parse_json_items(text, scope)
    with progress("importing") as report:
        result = state.api.import_(items=items, bundle=bundle, mode=mode,
                                       allow_plaintext=allow_plaintext, passphrase=read_passphrase(passphrase_file),
                                       prefix=prefix, dry_run=dry_run, progress=report)
    if as_json:
        emit_json({"added": _pairs(result.added), "updated": _pairs(result.updated),
                   "removed": _pairs(result.removed), "dryRun": dry_run})
        return
    if dry_run:
        for sign, pairs in (("+", result.added), ("~", result.updated), ("-", result.removed)):
            for scope_text, key in pairs:
                click.echo(plain(f"{sign} {scope_text} {key}"))  # the API's names: shown, not obeyed
    summary = f"{len(result.added)} added, {len(result.updated)} changed, {len(result.removed)} removed"
    info(("dry run: would import " if dry_run else "imported: ") + summary, err=dry_run)


@remote_option
@click.command("export")
@click.argument("scope", type=SCOPE)
@click.option("--prefix", type=PREFIX, default="", help="Only key names starting with this prefix.")
@click.option("--bundle", is_flag=True, help="An encrypted bundle (values stay encrypted) instead of metadata.")
@click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
              help="With --bundle: protect with a passphrase, so another installation can import it.")
@click.option("--all-versions", is_flag=True,
              help="With --bundle: every kept version of each secret, not only the current one.")
@click.option("--format", "format_", type=click.Choice(["dotenv", "json", "shell"]),
              help="With --reveal: the plaintext values as a dotenv file, JSON or shell `export` lines.")
@click.option("--reveal", is_flag=True, help="With --format: export the plaintext values (asks for confirmation).")
@click.option("--yes", is_flag=True, help="Confirm --reveal without a prompt (required without a terminal).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this new file (mode 0600) instead of stdout.")
@click.option("--force", is_flag=True, help="With --out: replace the file if it exists.")
@click.option("--allow-env", "allowed", multiple=True, metavar="NAME",
              help="With --format dotenv or shell: allow this variable although it is a loader, shell or "
              "interpreter hook (LD_*, PATH, PYTHON*, ...). Repeatable.")
@pass_state
def export_command(state: CliState, scope: Scope, prefix: str, bundle: bool, passphrase_file: Path | None,
                   all_versions: bool, format_: str | None, reveal: bool, yes: bool, out: Path | None, force: bool,
                   allowed: tuple[str, ...]) -> None:
    """Export metadata (default, never values), an encrypted bundle, or with --reveal the plaintext values."""
    if passphrase_file and not bundle:
        raise ValidationError("passphrase-file", "only goes with --bundle")
    if all_versions and not bundle:
        raise ValidationError("all-versions", "only goes with --bundle")
    if force and out is None:
        raise ValidationError("force", "only goes with --out")
    if format_ and not reveal:  # values leave the vault only on the explicit flag
        raise ValidationError("reveal", f"--format {format_} exports plaintext values; pass --reveal to do so")
    if reveal and bundle:
        raise ValidationError("reveal", "a bundle keeps the values encrypted; give either --bundle or --reveal")
    if reveal and not format_:
        raise ValidationError("format", "--reveal needs --format dotenv, json or shell")
    if out is not None and not force and os.path.lexists(out):
        raise _exists()  # early, so a refused export reads and audits nothing (the write below checks again)
    if reveal and format_:
        _export_plaintext(state, scope, prefix, format_, yes, out, force, frozenset(allowed))
        return
    with progress("exporting") as report:
        result = state.api.export(scope, prefix, bundle, read_passphrase(passphrase_file),
                                  progress=report, all_versions=all_versions)
    document: Any = result.bundle if bundle else {
        "format": "sprongus.metadata.v1", "scope": str(scope), "prefix": prefix,
        "items": [_metadata(v.to_dict()) for v in result.items]}
    if out is None:
        emit_json(document)
        return
    _write_private(out, json.dumps(document, indent=2, ensure_ascii=False) + "\n", force)
    count = len({(v.scope, v.key) for v in result.items})  # secrets, not versions (a remote bundle lists each)
    info(f"exported {count} secret{'s' if count != 1 else ''} to {out}")


def _export_plaintext(state: CliState, scope: Scope, prefix: str, format_: str, yes: bool, out: Path | None,
                      force: bool, allowed: frozenset[str]) -> None:
    """Names first (a listing reveals nothing), then one batch reveal per 1,000 keys, then one write."""
    from sprongus.entrypoints.cli import plaintext_formats as fmt  # loads the domain: not for --help
    from sprongus.entrypoints.cli.secrets_basic import confirm_reveal
    from sprongus.service.batch_reveal import reveal_keys
    from sprongus.service.pages import api_views

    under = f" under {prefix}" if prefix else ""
    confirm_reveal(f"Reveal the values of {scope}{under} into {out or 'standard output'}?", yes)
    names = fmt.variable_names((view.key for view in api_views(state.api, scope, prefix)),
                               hooks_allowed=None if format_ == "json" else allowed)
    values = {key: value.reveal() for key, value in reveal_keys(state.api, scope, names.values()).items()}
    text = fmt.render(format_, names, values)
    if format_ == "dotenv" and (expanding := fmt.interpolated(names, values)):
        click.echo(f"warning: the values of {plain(', '.join(expanding))} hold ${{: read the file without variable "
                   "expansion (python-dotenv: interpolate=False), or they change", err=True)
    if out is None:
        click.echo(text, nl=False)
        return
    _write_private(out, text, force)
    info(f"exported {len(names)} secret{'s' if len(names) != 1 else ''} to {out}")


def _pairs(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"scope": scope, "keyName": key} for scope, key in pairs]


def _metadata(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("value", "masked")}


def _exists() -> ValidationError:
    return ValidationError("out", "the file already exists; pass --force to replace it")


def _write_private(path: Path, text: str, force: bool) -> None:
    """A new 0600 file that no one else can have prepared: nothing at `path` is followed or written through.

    Without --force, O_CREAT|O_EXCL creates it or fails (also on a symlink, dangling or not). With --force, the
    text goes to a temp file that mkstemp creates the same way under an unpredictable name in the same folder, and
    os.replace renames it over `path`: a symlink there is replaced itself, never written through. (The temp name
    used to be predictable, so a symlink planted under it redirected the write to any file the user could write.)
    """
    try:
        if not force:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except FileExistsError:
                raise _exists() from None
            try:
                _write_all(fd, text)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(path)  # our own half-written file: created by the O_EXCL open above
                raise
            return
        import tempfile  # its imports (shutil, random, bz2, lzma) cost --help ~10 ms

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            _write_all(fd, text)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        raise ValidationError("out", f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def _write_all(fd: int, text: str) -> None:
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
