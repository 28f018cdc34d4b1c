"""Builds cloud KMS master-key providers from `SPRONGUS_KEY_PROVIDER` URIs (docs/design.md#configuration).

Each vendor's SDK is imported inside its builder (entrypoints/kms_clients/<vendor>.py), so commands that do not
use a KMS never pay for it. Swapping vendors is a configuration change: the URI's scheme picks the builder.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.key_material import KeyMaterial
from sprongus.entrypoints.profiles import KMS_SCHEMES
from sprongus.ports.crypto import MasterKeyProvider

VENDORS = KMS_SCHEMES


@dataclass(frozen=True)
class KmsOptions:
    """Connection options shared by every vendor; a URI's own `?endpoint=` wins over `endpoint`."""

    endpoint: str | None = None
    ca_file: str | None = None
    timeout: float = 10.0
    allow_http: bool = True  # False in prod: plaintext HTTP to a KMS only for emulators and tests
    pool_size: int = 16  # HTTP connections kept per client: at least the calls in flight (SPRONGUS_KMS_CONCURRENCY)


@dataclass(frozen=True)
class ProviderUri:
    vendor: str
    resource: str  # everything after `vendor://`, without the query
    endpoint: str | None


def parse_provider_uri(uri: str, options: KmsOptions) -> ProviderUri:
    parts = urlsplit(uri)
    if parts.scheme not in VENDORS or not (parts.netloc or parts.path):
        raise ConfigError(f"SPRONGUS_KEY_PROVIDER: {parts.scheme or uri!r} is not a KMS URI "
                          f"({', '.join(v + '://' for v in VENDORS)})")
    query = parse_qs(parts.query)
    endpoint = query["endpoint"][0] if query.get("endpoint") else options.endpoint
    if endpoint is not None:
        scheme = urlsplit(endpoint).scheme
        if scheme not in ("http", "https"):
            raise ConfigError("SPRONGUS_KMS_ENDPOINT: must be an http:// or https:// URL")
        if scheme == "http" and not options.allow_http:
            raise ConfigError("SPRONGUS_KMS_ENDPOINT: http:// is refused when SPRONGUS_ENV=prod; use https://")
    resource = (parts.netloc + parts.path).strip("/")
    return ProviderUri(parts.scheme, resource, endpoint)


def kms_provider(uri: str, options: KmsOptions) -> MasterKeyProvider:
    parsed = parse_provider_uri(uri, options)
    try:
        builder = importlib.import_module(f"sprongus.entrypoints.kms_clients.{parsed.vendor}")
    except ImportError as exc:  # the vendor's extra is not installed
        raise ConfigError(f"SPRONGUS_KEY_PROVIDER: the {parsed.vendor} provider needs "
                          f"`pip install 'sprongus[{parsed.vendor}]'` ({exc.name} is missing)") from None
    provider: MasterKeyProvider = builder.build(parsed, options)
    return provider


def kms_keys(uri: str, options: KmsOptions, hmac_keys: str | None) -> KeyMaterial:
    """A KMS master key; value-HMAC keys, if any, come from SPRONGUS_HMAC_KEYS (the KMS never releases keys)."""
    from sprongus.adapters.keys_local import StaticHmacKeyring, parse_key_list

    hmac = StaticHmacKeyring(parse_key_list(hmac_keys, "SPRONGUS_HMAC_KEYS"), "env") if hmac_keys else None
    parsed = parse_provider_uri(uri, options)
    return KeyMaterial(kms_provider(uri, options), hmac, parsed.vendor, f"{parsed.vendor}://{parsed.resource}")
