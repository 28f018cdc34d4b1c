"""sprongus.client.flask against the real API over HTTP: an application's config filled from a scope with one
batch reveal, all or nothing, never replacing a setting the application already has."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, current_app

from sprongus.client import Client, ConfigError, NotFound, ValidationError
from sprongus.client.flask import client_of, config_name, init_app, load_into
from tests.harness import CANARY
from tests.unit.client_server import ServedApi, served_api

SECRETS = {"notion.api_token": f"{CANARY}-notion", "notion.workspace-id": "ws_42", "stripe.key": f"{CANARY}-stripe"}


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApi]:
    with served_api() as api:
        api.seed("project:shop", SECRETS)
        yield api


@pytest.fixture
def client(served: ServedApi) -> Client:
    return Client(served.url, served.token("flask-app", projects=("shop", "flags", "twins")))


def test_config_names_follow_secrets_run() -> None:
    from sprongus.entrypoints.cli.run_env import env_name

    for key in (*SECRETS, "a-b.c_d", "X"):
        assert config_name(key) == env_name(key)


def test_load_into_fills_the_config_with_one_batch_reveal(served: ServedApi, client: Client) -> None:
    app = Flask("shop")
    before = len(served.requests)

    names = load_into(app, client, "project:shop", prefix="notion.")

    assert names == ["NOTION_API_TOKEN", "NOTION_WORKSPACE_ID"]
    assert app.config["NOTION_API_TOKEN"] == f"{CANARY}-notion" and app.config["NOTION_WORKSPACE_ID"] == "ws_42"
    assert "STRIPE_KEY" not in app.config
    assert served.requests[before:] == [("POST", "/v1/secrets:reveal")]


def test_load_into_by_keys_and_the_whole_scope(client: Client) -> None:
    by_keys, whole = Flask("a"), Flask("b")

    load_into(by_keys, client, "project:shop", keys=["stripe.key"])
    load_into(whole, client, "project:shop")

    assert by_keys.config["STRIPE_KEY"] == f"{CANARY}-stripe" and "NOTION_API_TOKEN" not in by_keys.config
    assert {whole.config[config_name(k)] for k in SECRETS} == set(SECRETS.values())


def test_a_missing_key_sets_nothing(client: Client) -> None:
    app = Flask("shop")

    with pytest.raises(NotFound, match=r"secret stripe\.nothing not found in project:shop"):
        load_into(app, client, "project:shop", keys=["stripe.key", "stripe.nothing"])

    assert "STRIPE_KEY" not in app.config


def test_a_setting_the_app_already_has_is_not_replaced_unless_asked(served: ServedApi, client: Client) -> None:
    served.seed("project:flags", {"debug": "yes", "secret_key": f"{CANARY}-session"})
    app = Flask("shop")
    app.config["DEBUG"] = False

    with pytest.raises(ValidationError, match=r"debug would replace app.config\['DEBUG'\]"):
        load_into(app, client, "project:flags")
    assert app.config["DEBUG"] is False and app.config["SECRET_KEY"] is None  # nothing was set

    assert load_into(app, client, "project:flags", keys=["secret_key"]) == ["SECRET_KEY"]  # None: not a setting yet
    load_into(app, client, "project:flags", override=True)
    assert app.config.get("DEBUG") == "yes" and app.config["SECRET_KEY"] == f"{CANARY}-session"


@pytest.mark.parametrize("key", ["secret-key-fallbacks", "session_cookie_domain", "server-name", "trusted_hosts",
                                 "max-content-length", "propagate_exceptions"])
def test_a_flask_setting_left_none_is_not_set_by_a_scope_writer(served: ServedApi, client: Client, key: str) -> None:
    """Flask leaves these None; a key in the scope set them. SECRET_KEY_FALLBACKS = "x" made "x" a session signing
    key (Flask extends its keys by the string's characters): whoever could write the scope forged sessions."""
    served.seed("project:flags", {key: "x"})
    app = Flask("shop")
    app.config["SECRET_KEY"] = f"{CANARY}-own-key"

    with pytest.raises(ValidationError, match=rf"{key} would replace app.config\['{config_name(key)}'\]"):
        load_into(app, client, "project:flags", keys=[key])
    assert app.config.get(config_name(key)) is None
    assert load_into(app, client, "project:flags", keys=[key], override=True) == [config_name(key)]  # if asked


def test_an_own_setting_left_none_and_secret_key_can_be_loaded(served: ServedApi, client: Client) -> None:
    served.seed("project:flags", {"payments.key": f"{CANARY}-pay", "secret_key": f"{CANARY}-session"})
    app = Flask("shop")
    app.config["PAYMENTS_KEY"] = None  # the app's own placeholder: not one of Flask's settings

    assert load_into(app, client, "project:flags", keys=["payments.key", "secret_key"]) == ["PAYMENTS_KEY",
                                                                                         "SECRET_KEY"]
    assert app.config["PAYMENTS_KEY"] == f"{CANARY}-pay" and app.config["SECRET_KEY"] == f"{CANARY}-session"


def test_two_keys_with_one_config_name_are_refused(served: ServedApi, client: Client) -> None:
    served.seed("project:twins", {"db.url": "a", "db-url": "b"})
    app = Flask("shop")

    with pytest.raises(ValidationError, match=r"db-url and db.url both become app.config\['DB_URL'\]"):
        load_into(app, client, "project:twins")

    assert "DB_URL" not in app.config


def test_init_app_keeps_the_client_for_the_views(served: ServedApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPRONGUS_API_URL", served.url)
    monkeypatch.setenv("SPRONGUS_TOKEN", served.token("flask-view"))
    monkeypatch.delenv("SPRONGUS_OIDC_TOKEN_FILE", raising=False)
    app = Flask("shop")
    client = init_app(app, "project:shop", keys=["notion.api_token"])

    @app.get("/token-length")
    def token_length() -> str:
        return str(len(client_of(current_app).reveal("project:shop", "stripe.key")))

    assert client_of(app) is client and app.config["NOTION_API_TOKEN"] == f"{CANARY}-notion"
    assert app.test_client().get("/token-length").get_data(as_text=True) == str(len(f"{CANARY}-stripe"))


def test_client_of_an_app_without_init_app_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"call sprongus\.client\.flask\.init_app"):
        client_of(Flask("bare"))
