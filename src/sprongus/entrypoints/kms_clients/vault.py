"""Builds the Vault / OpenBao transit provider for `vault://HOST:PORT/MOUNT/keys/NAME`.

The server is `https://HOST:PORT` unless an endpoint (`?endpoint=` or SPRONGUS_KMS_ENDPOINT) says otherwise;
`http://` only outside prod. Credentials are Vault's usual ones: VAULT_TOKEN (or ~/.vault-token), VAULT_NAMESPACE
for Vault Enterprise namespaces; TLS trusts SPRONGUS_KMS_CA_FILE, else VAULT_CACERT, else the system CAs.
The token is handed to hvac and never logged or put in an error message.
"""

from __future__ import annotations

import os

import hvac  # type: ignore[import-untyped]
import requests
import requests.adapters

from sprongus.adapters.kms_answers import RedirectRefused
from sprongus.adapters.kms_vault import VaultTransitMasterKeyProvider
from sprongus.domain.credentials import token_text
from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.kms import KmsOptions, ProviderUri, resource_match
from sprongus.entrypoints.kms_clients.bounded import BoundedAdapter


def build(uri: ProviderUri, options: KmsOptions) -> VaultTransitMasterKeyProvider:
    match = resource_match(uri)
    # VAULT_TOKEN, else ~/.vault-token, as the vault CLI does; a Kubernetes secret's trailing newline is dropped
    token = token_text("VAULT_TOKEN", hvac.utils.get_token_from_env() or "")
    if not token:
        raise ConfigError("VAULT_TOKEN: the vault:// key provider needs a Vault token (VAULT_TOKEN or "
                          "~/.vault-token)")
    # No redirect is followed: requests forwards the X-Vault-Token header (it drops only Authorization) and the
    # body (a data key to wrap) to wherever a 307 points, another host or plain http included.
    namespace = os.environ.get("VAULT_NAMESPACE") or None
    if namespace is not None and not (namespace.isascii() and namespace.isprintable() and " " not in namespace):
        raise ConfigError("VAULT_NAMESPACE: a Vault namespace path (printable ASCII, no spaces) is needed")
    client = hvac.Client(url=uri.endpoint or f"https://{match['host']}", token=token,
                         verify=options.ca_file or None, timeout=options.timeout, namespace=namespace,
                         allow_redirects=False)
    client.session.hooks["response"].append(_refuse_redirects)
    # requests keeps 10 connections per host by default: fewer than the calls in flight during a rotation.
    adapter = BoundedAdapter(options.timeout, pool_connections=1, pool_maxsize=options.pool_size)
    client.session.mount("https://", adapter)
    client.session.mount("http://", adapter)
    return VaultTransitMasterKeyProvider(client, match["mount"], match["name"])


def _refuse_redirects(response: requests.Response, *args: object, **kwargs: object) -> None:
    if response.is_redirect:
        raise RedirectRefused(response.status_code)
