"""Flask start-up: a scope's secrets into `app.config`, read with one batch reveal.

    app = Flask(__name__)
    init_app(app, "project:shop", prefix="notion.")  # Client.from_env(), kept in app.extensions
    app.config["NOTION_API_TOKEN"]

Config names are made the way `sprongus secrets run` names environment variables: `notion.api_token` becomes
`NOTION_API_TOKEN`. Flask is imported for type checking only: the helpers touch `app.config` and `app.extensions`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sprongus.client.client import Client
from sprongus.domain.errors import ConfigError, NotFound, ValidationError
from sprongus.domain.scope import Scope

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "sprongus"
_UNSAFE = re.compile(r"[.\-]")


def config_name(key: str) -> str:
    """`notion.api_token` -> `NOTION_API_TOKEN`: upper-case, `.` and `-` become `_`.

    `secrets run`'s rule (entrypoints/cli/run_env.env_name), repeated rather than imported: importing it would
    load the CLI's package, and Click with it, into the application.
    """
    return _UNSAFE.sub("_", key).upper()


def load_into(app: Flask, client: Client, scope: str | Scope, prefix: str | None = None,
              keys: Iterable[str] | None = None, *, override: bool = False) -> list[str]:
    """Reveal the scope's secrets (`keys`, those under `prefix`, or all of them) with one batch request and set
    them in `app.config`; the config names set, sorted.

    Nothing is set unless everything can be: a requested key that is missing raises NotFound, two keys with one
    config name raise ValidationError, and so does a key whose name is already set in `app.config` (not None), or
    is one of Flask's own settings whatever its value (`SECRET_KEY` excepted while it is None), unless
    `override`: whoever may write the scope must not be able to switch `DEBUG` or `SESSION_COOKIE_SECURE` of the
    application by adding a key, nor one of the settings Flask leaves None (`SECRET_KEY_FALLBACKS` takes each
    string it is given as a session signing key, `SESSION_COOKIE_DOMAIN`, `SERVER_NAME`, `TRUSTED_HOSTS`).
    """
    if isinstance(keys, str):
        raise ValidationError("keys", "must be a list of key names, not one string")
    wanted = None if keys is None else sorted(set(keys))  # once: a generator would be used up by the reveal
    values = client.reveal_many(scope, prefix=prefix, keys=wanted)
    missing = [key for key in wanted or () if key not in values]
    if missing:
        raise NotFound(f"secret {missing[0]} not found in {scope}, or out of the token's reach")
    names: dict[str, str] = {}
    for key in values:
        name = config_name(key)
        if name in names:
            raise ValidationError("key", f"{names[name]} and {key} both become app.config[{name!r}]")
        names[name] = key
    taken = [name for name in names if _taken(app, name)]
    if taken and not override:
        raise ValidationError("key", f"{names[taken[0]]} would replace app.config[{taken[0]!r}], which is already "
                                     "set; refused unless override=True")
    app.config.update({name: values[key] for name, key in names.items()})
    return sorted(names)


def _taken(app: Flask, name: str) -> bool:
    if app.config.get(name) is not None:
        return True
    return name in app.default_config and name != "SECRET_KEY"  # the one Flask setting kept in a secrets store


def init_app(app: Flask, scope: str | Scope, *, client: Client | None = None, prefix: str | None = None,
             keys: Iterable[str] | None = None, override: bool = False) -> Client:
    """`load_into` with `client` (default: `Client.from_env()`), which is then kept for the views: `client_of`."""
    client = client if client is not None else Client.from_env()
    load_into(app, client, scope, prefix, keys, override=override)
    app.extensions[EXTENSION] = client
    return client


def client_of(app: Flask) -> Client:
    """The client `init_app` kept, e.g. `client_of(current_app).reveal(...)` in a view."""
    client = app.extensions.get(EXTENSION)
    if not isinstance(client, Client):
        raise ConfigError("no sprongus client on this app: call sprongus.client.flask.init_app(app, ...) first")
    return client
