"""`sprongus serve` (development server) and `sprongus login` (keep an API token in the OS keychain)."""

from __future__ import annotations

import sys

import click

from sprongus.domain.errors import ValidationError
from sprongus.entrypoints.cli.state import CliState, pass_state


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@pass_state
def serve_command(state: CliState, host: str, port: int) -> None:
    """The REST API on the embedded default, for development. Production: gunicorn (docs/deploy.md)."""
    from sprongus.entrypoints.api import create_app

    click.echo(f"serving the sprongus API on http://{host}:{port}/v1 (development server; Ctrl-C stops)", err=True)
    create_app(state.get_api_container()).run(host=host, port=port, debug=False, use_reloader=False)


@click.command("login")
@click.option("--api-url", help="The API's base URL (default: SPRONGUS_API_URL).")
@pass_state
def login_command(state: CliState, api_url: str | None) -> None:
    """Read an API token from stdin and keep it in the OS keychain for --remote."""
    from sprongus.adapters.keychain import store_api_token

    url = api_url or state.get_settings().api_url
    if not url:
        raise ValidationError("api-url", "give --api-url or set SPRONGUS_API_URL")
    interactive = sys.stdin.isatty()
    token = click.prompt("API token", hide_input=True, err=True) if interactive else sys.stdin.readline().strip()
    if not token.startswith("spr_"):
        raise ValidationError("token", "an API token starts with spr_")
    store_api_token(url, token)
    click.echo(f"token stored in the OS keychain for {url}")
