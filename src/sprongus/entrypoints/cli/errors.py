"""One table from the domain's error tree to the CLI's exit codes (docs/design.md#cli-and-exit-codes)."""

from __future__ import annotations

import errno
import os
import sys
import traceback

import click

from sprongus.domain import errors as e
from sprongus.domain.redaction import scrub_text
from sprongus.domain.text import one_printable_line

(EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED, EXIT_CONFLICT, EXIT_RATE_LIMITED, EXIT_INTEGRITY,
 EXIT_UNAVAILABLE) = (0, 1, 2, 3, 4, 5, 6, 7, 8)

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
    # Before KeyProviderError and StorageError: their outage kinds mean "try again", never "the data is bad" (a
    # script that alarms on 7 must not page anyone for a KMS, database, audit store or API outage or a full disk).
    (e.Unavailable, EXIT_UNAVAILABLE),
    # The KMS refuses this identity: its permissions are configuration to fix, like a missing credential.
    (e.KeyAccessDenied, EXIT_USAGE),
    (e.KeyProviderError, EXIT_INTEGRITY),
    (e.StorageError, EXIT_ERROR),  # a file that is not a database, a refused statement: not an outage
]


def exit_code_for(exc: e.SprongusError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_ERROR


def fail(exc: e.SprongusError) -> click.exceptions.Exit:
    """Print the error as one scrubbed line on stderr (control characters escaped: its text may come from a server);
    return the Exit to raise."""
    click.echo(f"error: {one_printable_line(scrub_text(str(exc)))}", err=True)
    return click.exceptions.Exit(exit_code_for(exc))


class GuardedGroup(click.Group):
    """Turns every expected error into one line on stderr and its exit code: no traceback, no value."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except e.SprongusError as exc:
            raise fail(exc) from None
        except click.UsageError as exc:
            if exc.message.startswith("Got unexpected extra argument"):
                # Click names the stray words, and after a key name they are often a value typed unquoted.
                raise click.UsageError("got unexpected extra arguments (not repeated: they may be a value); quote a "
                                       "value that holds spaces, or give it on stdin with -", exc.ctx) from None
            raise
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `sprongus secrets list | head -1`: the reader left, nothing to report
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise _unexpected(exc) from None
            # A full disk under anything that writes a file (a new key version, `export --out`): try again later.
            raise fail(e.StorageUnavailable(e.DISK_FULL)) from None
        except Exception as exc:  # never a traceback: it could carry a value from a local variable's repr
            raise _unexpected(exc) from None


def _unexpected(exc: Exception) -> click.exceptions.Exit:
    from sprongus.entrypoints.env_flags import debug_tracebacks

    if debug_tracebacks():
        click.echo(scrub_text(traceback.format_exc()), err=True)
    click.echo(f"error: unexpected {type(exc).__name__}; set SPRONGUS_DEBUG=1 for details", err=True)
    return click.exceptions.Exit(EXIT_ERROR)
