"""`sprongus serve`: the development server."""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING

import click

from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.cli.state import CliState, pass_state

if TYPE_CHECKING:
    import socket

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="The TCP port.")
@pass_state
def serve_command(state: CliState, host: str, port: int) -> None:
    """The REST API on the embedded default, for development. Production: gunicorn (docs/deploy.md)."""
    from werkzeug.serving import make_server

    from sprongus.entrypoints.api import create_app

    # Listen first, then build, then announce: a busy port used to be announced as served before Werkzeug's own
    # two-line complaint, and must not build (and so create) a vault either.
    listener = _listen(host, port)
    try:
        server = make_server(host, port, create_app(state.get_api_container()), threaded=True,
                             fd=listener.fileno())
    finally:
        listener.close()  # the server holds its own duplicate of the socket
    if not sys.stderr.isatty():
        logging.getLogger("werkzeug").addFilter(_plain_text)  # a log file gets no colour codes
    click.echo(f"serving the sprongus API on http://{host}:{port}/v1 (development server; Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how it stops: no "interrupted", exit 0
    finally:
        server.server_close()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket. A busy port is exit 2, not an outage (8): it is this machine's configuration, which
    the operator fixes with another --port, and no retry of ours would change it."""
    import errno
    import socket  # only `serve` needs it: every other command starts without it

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like Werkzeug: a restart need not wait
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} is in use; stop what listens there or choose another --port") from None
        raise ConfigError(f"port {port}: cannot listen on {host} ({exc.strerror or type(exc).__name__})") from None
    return sock


def _plain_text(record: logging.LogRecord) -> bool:
    """Werkzeug colours its request lines with ANSI codes even when stderr is a file: strip them there."""
    record.msg, record.args = _ANSI.sub("", record.getMessage()), None
    return True

