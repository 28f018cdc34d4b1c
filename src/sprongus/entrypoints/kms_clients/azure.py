"""Builds the Azure Key Vault provider for `azure://VAULT.vault.azure.net/keys/NAME[/VERSION]`.

Managed HSM works the same way (`azure://HSM.managedhsm.azure.net/keys/NAME`). Without a version the provider follows
the key's current version (needs keys/get); with one it is pinned. Credentials come from DefaultAzureCredential
(environment, workload identity, managed identity, Azure CLI, ...). `default_credential` is the one seam tests
replace; production code has no switch that turns authentication off.

An endpoint override (`?endpoint=` or SPRONGUS_KMS_ENDPOINT) must be https:// (the SDK refuses to send bearer tokens
over plain HTTP). The SDK checks that the vault's token challenge names a Key Vault domain that the vault's host
belongs to; that check is skipped when the client talks to another host than the URI's vault (an emulator, a fixed
private address) or to an IP address, which no challenge can match: the operator chose that endpoint, and
SPRONGUS_KMS_CA_FILE decides which certificate it may present.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient
from urllib3.util.retry import Retry

from sprongus.adapters.kms_azure import AzureKeyVaultMasterKeyProvider
from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.kms import KmsOptions, ProviderUri, resource_match
from sprongus.entrypoints.kms_clients.bounded import BoundedAdapter


def default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def build(uri: ProviderUri, options: KmsOptions,
          credential: TokenCredential | None = None) -> AzureKeyVaultMasterKeyProvider:
    match = resource_match(uri)
    vault_url = (uri.endpoint or f"https://{match['host']}").rstrip("/")
    if urlsplit(vault_url).scheme != "https":
        raise ConfigError("SPRONGUS_KMS_ENDPOINT: Azure Key Vault needs an https:// endpoint (the SDK never sends "
                          "a bearer token over plain HTTP)")
    kwargs = client_options(vault_url, match["host"], options)
    kwargs["transport"] = pooled_transport(options, **kwargs)
    credential = credential or default_credential()

    def crypto(key: KeyVaultKey | str) -> CryptographyClient:
        return CryptographyClient(key, credential, **kwargs)

    return AzureKeyVaultMasterKeyProvider(KeyClient(vault_url, credential, **kwargs), crypto, match["name"],
                                          match["version"], vault_aliases=(match["host"],))


def client_options(vault_url: str, vault_host: str, options: KmsOptions) -> dict[str, Any]:
    """Keyword arguments for KeyClient and CryptographyClient: timeouts, the trusted CA, challenge verification."""
    kwargs: dict[str, Any] = {
        "connection_timeout": options.timeout,
        "read_timeout": options.timeout,
        "verify_challenge_resource": _challenge_verifiable(vault_url, vault_host),
    }
    if options.ca_file:
        kwargs["connection_verify"] = options.ca_file
    return kwargs


def pooled_transport(options: KmsOptions, **connection: Any) -> RequestsTransport:
    """One HTTP transport for the KeyClient and every CryptographyClient, whose pool keeps `pool_size` connections
    (requests keeps 10 by default: fewer than the calls in flight during a rotation, so the rest were opened, used
    once and thrown away, a TLS handshake each)."""
    session = requests.Session()
    # what azure-core mounts on a session of its own (no retries or redirects in urllib3: its pipeline retries),
    # with the pool sized
    adapter = BoundedAdapter(options.timeout, pool_connections=1, pool_maxsize=options.pool_size,
                             max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(session=session, session_owner=False, **{
        k: v for k, v in connection.items() if k in ("connection_timeout", "read_timeout", "connection_verify")})


def _challenge_verifiable(vault_url: str, vault_host: str) -> bool:
    parts = urlsplit(vault_url)
    if parts.netloc.lower() != vault_host.lower():
        return False
    try:
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return parts.hostname != "localhost"
    return False
