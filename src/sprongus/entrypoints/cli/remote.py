"""`--remote`: the SecretsApi of the REST API named by the settings, with its token."""

from __future__ import annotations

import urllib.parse

from sprongus.adapters.http_client import ApiClient, HttpSecretsApi
from sprongus.domain import errors as e
from sprongus.entrypoints.config import Settings


def remote_api(settings: Settings) -> HttpSecretsApi:
    if not settings.api_url or urllib.parse.urlsplit(settings.api_url).scheme not in ("http", "https"):
        raise e.ConfigError("SPRONGUS_API_URL: set it to the API's http(s) base URL (e.g. http://127.0.0.1:8000)")
    token = settings.api_token
    if not token:
        from sprongus.adapters.keychain import stored_api_token

        token = stored_api_token(settings.api_url)
    if not token:
        raise e.PermissionDenied("no API token: set SPRONGUS_TOKEN or run `sprongus login`")
    return HttpSecretsApi(ApiClient(settings.api_url, token))
