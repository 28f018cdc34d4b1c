"""What every command receives through `ctx.obj`: the container (built lazily) and the local principal."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sprongus.domain.principal import Principal
    from sprongus.domain.service import SecretsService
    from sprongus.entrypoints.config import Settings
    from sprongus.entrypoints.container import Container


def _stderr_notice(message: str) -> None:
    click.echo(message, err=True)


def _default_container(skip_unused_drivers: bool) -> Container:
    from sprongus.entrypoints.config import Settings
    from sprongus.entrypoints.profiles import database_backend

    settings = Settings.from_env()
    if skip_unused_drivers:
        _skip_unused_imports(postgres=database_backend(settings) == "postgres")
    from sprongus.entrypoints.container import build_container  # after the skip: it imports dependency-injector

    return build_container(settings, notice=_stderr_notice, local_owner=True)


# Optional integrations that libraries import eagerly when installed, which a local CLI command never uses:
# dependency-injector probes yaml, pydantic-settings, FastAPI, Starlette and werkzeug; peewee probes psycopg.
_NEVER_LOCAL = ("yaml", "pydantic_settings", "fastapi", "fast_depends", "starlette", "werkzeug", "flask")


def _skip_unused_imports(postgres: bool) -> None:
    """Mark them absent (their importers catch ImportError): a local `secrets get` saves ~100 ms of imports."""
    names = _NEVER_LOCAL if postgres else (*_NEVER_LOCAL, "psycopg", "psycopg2")
    for name in names:
        if not any(loaded == name or loaded.startswith(name + ".") for loaded in sys.modules):
            sys.modules[name] = None  # type: ignore[assignment]


@dataclass
class CliState:
    """Tests pass a ready container; the real CLI builds one from the environment on first use."""

    container: Container | None = None
    build: Callable[[bool], Container] = field(default=_default_container)
    skip_unused_drivers: bool = False  # only the real CLI process: a test process may need both engines
    remote: bool = False  # --remote, or SPRONGUS_REMOTE=1
    settings: Settings | None = None

    def get_container(self) -> Container:
        if self.container is None:
            self.container = self.build(self.skip_unused_drivers)
        return self.container

    def get_api_container(self) -> Container:
        """Serving the API: the container is built without the CLI's local-owner shortcuts (rate limits on)."""
        if self.container is not None:
            return self.container
        from sprongus.entrypoints.container import build_container

        return build_container(self.get_settings(), notice=_stderr_notice)

    def get_settings(self) -> Settings:
        if self.settings is None:
            from sprongus.entrypoints.config import Settings

            self.settings = Settings.from_env()
        return self.settings

    @property
    def service(self) -> SecretsService:
        if self.remote or self.get_settings().remote:
            from sprongus.entrypoints.cli.remote import remote_service

            return remote_service(self.get_settings())  # type: ignore[return-value]  # same duck-typed subset
        service: SecretsService = self.get_container().secrets_service()
        return service

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
