from __future__ import annotations

import gc
import logging

import click

from sprongus import __version__
from sprongus.domain.redaction import install_log_redaction
from sprongus.entrypoints.cli.errors import GuardedGroup
from sprongus.entrypoints.cli.lazy import LazyGroup, Loader
from sprongus.entrypoints.cli.state import CliState, use_quiet


# Each command's module loads when the command line names it (cli/lazy.py).
def _secrets() -> list[click.Command]:
    from sprongus.entrypoints.cli.secrets import secrets_group

    return [secrets_group]


def _keys() -> list[click.Command]:
    from sprongus.entrypoints.cli.keys import keys_group

    return [keys_group]


def _tokens() -> list[click.Command]:
    from sprongus.entrypoints.cli.tokens import tokens_group

    return [tokens_group]


def _auth() -> list[click.Command]:
    from sprongus.entrypoints.cli.auth import auth_group, login_command, logout_command

    return [auth_group, login_command, logout_command]


def _db() -> list[click.Command]:
    from sprongus.entrypoints.cli.db import db_group

    return [db_group]


def _serve() -> list[click.Command]:
    from sprongus.entrypoints.cli.serve import serve_command

    return [serve_command]


def _completion() -> list[click.Command]:
    from sprongus.entrypoints.cli.completion import completion_command

    return [completion_command]


def _audit() -> list[click.Command]:
    from sprongus.entrypoints.cli.audit import audit_group

    return [audit_group]


COMMANDS: dict[str, Loader] = {"secrets": _secrets, "keys": _keys, "tokens": _tokens, "auth": _auth, "db": _db,
                               "serve": _serve, "login": _auth, "logout": _auth, "completion": _completion,
                               "audit": _audit}


# What `sprongus --help` says of each command without loading it: the first paragraph of the command's own help
# (tests/unit/test_cli_lazy_help.py holds them to it).
SUMMARIES = {
    "audit": "The audit trail (local: this machine's vault): list, export as JSON lines, verify.",
    "auth": "Who may sign in: trusts for identity providers, and the signed-in token's status.",
    "completion": "Print the shell completion script for SHELL (bash 4.4+, zsh or fish).",
    "db": "Database schema management (local: the configured database, never through the API).",
    "keys": "Master keys (local: on this machine's vault): status, rotation and verification.",
    "login": "Keep an API token for --remote: in the OS keychain, else in a 0600 file. The token is read from stdin, "
             "or with --oidc comes from signing in with the identity provider.",
    "logout": "Revoke the API token at the API and forget it here (keychain and token file). A token in "
              "SPRONGUS_TOKEN is revoked too; unset it yourself.",
    "secrets": "Store, read (masked), reveal, import, export and rotate secrets, and keep their history.",
    "serve": "The REST API on the embedded default, for development. Production: gunicorn (docs/deploy.md).",
    "tokens": "API tokens for the REST API (local: on this machine's vault; opaque, stored only as a hash).",
}


class RootGroup(LazyGroup, GuardedGroup):
    """The lazy commands, with every expected error turned into one line and its exit code."""


@click.group(cls=RootGroup, lazy=COMMANDS, summaries=SUMMARIES,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sprongus")
@click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=use_quiet,
              help="No confirmations, notices or progress on success; errors and warnings still print.")
def cli() -> None:
    """sprongus: an envelope-encrypted secrets store."""


def main() -> None:
    gc.disable()  # until the command's start-up is over: CliState.started
    _configure_logging()
    state = CliState(lean_imports=True)
    try:
        cli(prog_name="sprongus", obj=state)
    finally:
        if state.close():
            # Nothing left open holds a resource: the interpreter's shutdown need not search the ~40,000 objects of
            # the modules, the container and the command for garbage cycles (~40 ms of every command).
            gc.freeze()


def _configure_logging() -> None:
    """Warnings to stderr, every record scrubbed of live plaintexts first. SPRONGUS_LOG_LEVEL sets sprongus' own
    loggers only: the libraries' stay at WARNING, since their debug lines carry credentials the redaction does not
    know (botocore's request headers hold an AWS session token)."""
    from sprongus.entrypoints.env_flags import log_level  # not config: its Settings class is not for --help

    level = logging.getLevelName(log_level())
    logging.basicConfig(level=max(level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sprongus").setLevel(level)
    install_log_redaction()
