"""Builds cloud KMS master-key providers from `SPRONGUS_KEY_PROVIDER` URIs (docs/design.md#configuration).

Each vendor's SDK is imported inside its builder (entrypoints/kms_clients/<vendor>.py), so commands that do not
use a KMS never pay for it. Swapping vendors is a configuration change: the URI's scheme picks the builder.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sprongus import __version__
from sprongus.domain.credentials import without_userinfo
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


# Each vendor's URI form, here rather than in its builder: the URI is checked before the vendor's SDK is imported, so
# a mistyped URI is reported as such even where that SDK (the extra) is missing; the builders read their parts from
# the same match. A bare `aws://` gets its vendor's form too, not a claim that `aws` is no KMS at all.
URI_FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "gcp": (re.compile(r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+"),
            "a gcp:// URI names a crypto key (not a version): gcp://projects/P/locations/L/keyRings/R/cryptoKeys/K"),
    "aws": (re.compile(r"arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+)"
                       r"|alias/[A-Za-z0-9/_-]+"),
            "an aws:// URI names a KMS key: aws://arn:aws:kms:REGION:ACCOUNT:key/ID or aws://alias/NAME"),
    "azure": (re.compile(r"(?P<host>[^/]+)/keys/(?P<name>[0-9A-Za-z-]{1,127})(?:/(?P<version>[0-9A-Za-z]{1,64}))?"),
              "an azure:// URI names a key: azure://VAULT.vault.azure.net/keys/NAME[/VERSION]"),
    "vault": (re.compile(r"(?P<host>[^/]+)/(?P<mount>[A-Za-z0-9._/-]+?)/keys/(?P<name>[A-Za-z0-9._-]+)"),
              "a vault:// URI names a transit key: vault://HOST:PORT/transit/keys/NAME (the mount is the path "
              "before /keys/)"),
}


def resource_match(uri: ProviderUri) -> re.Match[str]:
    """The URI's parts by its vendor's form; ConfigError (showing the form, not the URI) when it does not fit."""
    pattern, form = URI_FORMS[uri.vendor]
    match = pattern.fullmatch(uri.resource)
    if match is None:
        raise ConfigError(f"SPRONGUS_KEY_PROVIDER: {form}")
    return match


def parse_provider_uri(uri: str, options: KmsOptions) -> ProviderUri:
    parts = urlsplit(uri)
    if parts.scheme not in VENDORS:
        raise ConfigError("SPRONGUS_KEY_PROVIDER: a KMS provider is a "
                          f"{', '.join(v + '://' for v in VENDORS)} URI")
    parsed = ProviderUri(parts.scheme, (parts.netloc + parts.path).strip("/"), None)
    resource_match(parsed)
    query = parse_qs(parts.query)
    endpoint = query["endpoint"][0] if query.get("endpoint") else options.endpoint
    if endpoint is not None:
        without_userinfo("SPRONGUS_KMS_ENDPOINT", endpoint)  # also given as the provider URI's ?endpoint=
        scheme = urlsplit(endpoint).scheme
        if scheme not in ("http", "https"):
            raise ConfigError("SPRONGUS_KMS_ENDPOINT: must be an http:// or https:// URL")
        if scheme == "http" and not options.allow_http:
            raise ConfigError("SPRONGUS_KMS_ENDPOINT: http:// is refused when SPRONGUS_ENV=prod; use https://")
    return ProviderUri(parsed.vendor, parsed.resource, endpoint)


def missing_extra_message(vendor: str, module: str | None) -> str:
    """sprongus is not on a package index: the extra is installed from a checkout or a built wheel (docs/deploy.md)."""
    return (f"SPRONGUS_KEY_PROVIDER: the {vendor} provider needs the {vendor} extra: `pip install '.[{vendor}]'` in "
            f"a sprongus checkout, or `pip install 'dist/sprongus-{__version__}-py3-none-any.whl[{vendor}]'` for a "
            f"built wheel ({module} is missing)")


def kms_provider(uri: str, options: KmsOptions) -> MasterKeyProvider:
    parsed = parse_provider_uri(uri, options)
    try:
        builder = importlib.import_module(f"sprongus.entrypoints.kms_clients.{parsed.vendor}")
    except ImportError as exc:  # the vendor's extra is not installed
        raise ConfigError(missing_extra_message(parsed.vendor, exc.name)) from None
    provider: MasterKeyProvider = builder.build(parsed, options)
    return provider


def kms_keys(uri: str, options: KmsOptions, hmac_keys: str | None) -> KeyMaterial:
    """A KMS master key; value-HMAC keys, if any, come from SPRONGUS_HMAC_KEYS (the KMS never releases keys)."""
    from sprongus.adapters.keys_local import StaticHmacKeyring, parse_key_list

    hmac = StaticHmacKeyring(parse_key_list(hmac_keys, "SPRONGUS_HMAC_KEYS"), "env") if hmac_keys else None
    parsed = parse_provider_uri(uri, options)
    return KeyMaterial(kms_provider(uri, options), hmac, parsed.vendor, f"{parsed.vendor}://{parsed.resource}")
