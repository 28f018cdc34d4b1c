"""What every command receives through `ctx.obj`: the settings, the container (built lazily) and the SecretsApi."""

from __future__ import annotations

import gc
import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sprongus.domain.principal import Principal
    from sprongus.entrypoints.config import Settings
    from sprongus.entrypoints.container import Container
    from sprongus.ports.secrets_api import SecretsApi


def _stderr_notice(message: str) -> None:
    click.echo(message, err=True)


def _default_container(settings: Settings, lean: bool) -> Container:
    if lean:
        from sprongus.entrypoints.lean_imports import local_command
        from sprongus.entrypoints.profiles import database_backend

        with local_command(postgres=database_backend(settings) == "postgres"):
            return _build(settings)
    return _build(settings)


def _build(settings: Settings) -> Container:
    from sprongus.entrypoints.container import build_container

    return build_container(settings, notice=_stderr_notice, local_owner=True)


@dataclass
class CliState:
    """Tests pass a ready container; the real CLI builds one from the environment on first use."""

    container: Container | None = None
    build: Callable[[Settings, bool], Container] = field(default=_default_container)
    lean_imports: bool = False  # only the real CLI process: a test process may need every integration
    remote: bool = False  # --remote, or SPRONGUS_REMOTE=1
    settings: Settings | None = None
    remote_api: SecretsApi | None = None  # built on first use
    quiet: bool = False  # -q: no confirmations, notices or progress; errors and warnings still print
    serving: bool = False  # `serve` built the API's container (never closed by `close`)

    def get_container(self) -> Container:
        if self.container is None:
            self.container = self.build(self.get_settings(), self.lean_imports)
            self.started()
        return self.container

    def get_api_container(self) -> Container:
        """Serving the API: the container is built without the CLI's local-owner shortcuts (rate limits on)."""
        if self.container is not None:
            return self.container
        from sprongus.entrypoints.container import build_container

        self.serving = True
        container = build_container(self.get_settings(), notice=_stderr_notice)
        self.started()
        return container

    def started(self) -> None:
        """The command's start-up is over (its container or remote API is ready). The real CLI starts with the
        cyclic garbage collector off (root.main): start-up allocates tens of thousands of objects that all live to
        the end, and collecting among them cost ~15 ms of every command. What the command does next runs with it.
        They are frozen first: all of them are still in the youngest generation, and the first collection after
        start-up would otherwise search them all (~6 ms of a masked `get`) only to promote them."""
        if self.lean_imports and not gc.isenabled():
            gc.freeze()
            gc.enable()

    def close(self) -> bool:
        """The end of a command: closes the vault's database connection now (SQLite checkpoints its WAL when its
        last connection closes) rather than when the interpreter's shutdown collects it. True when nothing the
        command opened is left to that collection (a served API's container is)."""
        if self.serving:
            return False
        if self.container is not None:
            from sprongus.entrypoints.storage import close_database

            try:
                close_database(self.container.storage())
            except Exception:  # left to the shutdown's collection, as before
                return False
        return True

    def get_settings(self) -> Settings:
        if self.settings is None:
            from sprongus.entrypoints.config import Settings

            self.settings = Settings.from_env()
        return self.settings

    @property
    def api(self) -> SecretsApi:
        """The one interface every `secrets` command talks to: the local vault, or the REST API with --remote."""
        if self.remote or self.get_settings().remote:
            if self.remote_api is None:  # once per command: a workload's JWT is exchanged once
                from sprongus.entrypoints.cli.login import remote_secrets_api

                self.remote_api = remote_secrets_api(self.get_settings())
                self.started()
            return self.remote_api
        from sprongus.service.local_api import LocalSecretsApi

        container = self.get_container()
        return LocalSecretsApi(self.principal, container.secret_ops, container.transfer_ops, container.rotation_ops,
                               container.batch_reveal_ops, container.history_ops)

    @property
    def principal(self) -> Principal:
        """Local mode acts as the vault's owner; audit events name the OS user."""
        from sprongus.domain.principal import Principal

        return Principal.local_owner(_os_user())


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


pass_state = click.make_pass_decorator(CliState, ensure=True)


def use_quiet(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    """The root's -q, kept on the state for every command below it."""
    if value:
        ctx.ensure_object(CliState).quiet = True


LOCAL_NOTE = "Local: on this machine's vault (the configured database), never through the API."


class LocalCommand(click.Command):
    """A command that acts on this machine's vault only (keys, tokens, trusts, migrations). --remote or
    SPRONGUS_REMOTE=1 is refused by name rather than ignored: an operator who meant the remote vault must not get
    this one's keys or tokens without a word."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = f"{self.help or ''}\n\n{LOCAL_NOTE}".strip()
        # Hidden: it exists only so that `--remote` gets this one-line refusal rather than Click's usage dump.
        self.params.append(click.Option(["--remote"], is_flag=True, hidden=True, expose_value=False, is_eager=True,
                                        callback=self._refuse_flag))

    def _refuse_flag(self, ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value:
            from sprongus.domain.errors import ValidationError

            raise ValidationError("remote", f"{_path(ctx)} is local only: it acts on this machine's vault, never "
                                  "through the API")

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.ensure_object(CliState).get_settings().remote:
            from sprongus.domain.errors import ConfigError

            raise ConfigError(f"SPRONGUS_REMOTE: {_path(ctx)} is local only (it acts on this machine's vault, never "
                              "through the API); unset SPRONGUS_REMOTE to run it")
        return super().invoke(ctx)


class LocalGroup(click.Group):
    """A group of LocalCommands: every `@group.command` below it gets the refusal and the help note. (The group's
    own first line says `local`, so that `sprongus --help` shows it.)"""

    command_class = LocalCommand


def _path(ctx: click.Context) -> str:
    """`sprongus keys status`, whatever name the root was invoked under (a test runner calls it `cli`)."""
    return " ".join(["sprongus", *ctx.command_path.split()[1:]])


def remote_option(command: click.Command) -> click.Command:
    """`--remote` on a command: sets the flag on the state before the command runs (eager)."""
    def use_remote(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(CliState).remote = True

    return click.option("--remote", is_flag=True, expose_value=False, callback=use_remote, is_eager=True,
                        help="Through the REST API at SPRONGUS_API_URL (token: SPRONGUS_TOKEN or "
                        "`sprongus login`).")(command)
