"""One table from the domain's error tree to the CLI's exit codes (docs/design.md#cli-and-exit-codes)."""

from __future__ import annotations

import os
import sys
import traceback

import click

from sprongus.domain import errors as e
from sprongus.domain.redaction import scrub_text
from sprongus.entrypoints.config import debug_tracebacks

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED, EXIT_CONFLICT, EXIT_RATE_LIMITED, EXIT_INTEGRITY = (
    0, 1, 2, 3, 4, 5, 6, 7)

# Most specific first.
EXIT_CODES: list[tuple[type[e.SprongusError], int]] = [
    (e.ValidationError, EXIT_USAGE),
    (e.ConfigError, EXIT_USAGE),
    (e.NotFound, EXIT_NOT_FOUND),
    (e.Gone, EXIT_NOT_FOUND),
    (e.PermissionDenied, EXIT_DENIED),
    (e.Unauthenticated, EXIT_DENIED),
    (e.Conflict, EXIT_CONFLICT),
    (e.RateLimited, EXIT_RATE_LIMITED),
    (e.IntegrityError, EXIT_INTEGRITY),
    (e.KeyProviderUnavailable, EXIT_ERROR),
    (e.KeyProviderError, EXIT_INTEGRITY),
    (e.AuditUnavailable, EXIT_ERROR),
    (e.StorageError, EXIT_ERROR),
]


def exit_code_for(exc: e.SprongusError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_ERROR


def fail(exc: e.SprongusError) -> click.exceptions.Exit:
    """Print the error as one scrubbed line on stderr; return the Exit to raise."""
    click.echo(f"error: {scrub_text(str(exc))}", err=True)
    return click.exceptions.Exit(exit_code_for(exc))


class GuardedGroup(click.Group):
    """Turns every expected error into one line on stderr and its exit code: no traceback, no value."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except e.SprongusError as exc:
            raise fail(exc) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `sprongus secrets list | head -1`: the reader left, nothing to report
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_ERROR)
        except Exception as exc:  # never a traceback: it could carry a value from a local variable's repr
            if debug_tracebacks():
                click.echo(scrub_text(traceback.format_exc()), err=True)
            click.echo(f"error: unexpected {type(exc).__name__}; set SPRONGUS_DEBUG=1 for details", err=True)
            raise click.exceptions.Exit(EXIT_ERROR) from None
