"""Builds the Google Cloud KMS provider for `gcp://projects/P/locations/L/keyRings/R/cryptoKeys/K`.

Credentials are Application Default Credentials, except for an `http://` endpoint (an emulator or test fake, refused
in prod), which gets an insecure channel and no credentials at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import google_crc32c  # noqa: F401  (the adapter's checksums: a missing extra must fail at start, not on first use)
import grpc
from google.api_core import exceptions, retry
from google.auth.exceptions import DefaultCredentialsError
from google.cloud.kms import KeyManagementServiceClient
from google.cloud.kms_v1.services.key_management_service.transports import KeyManagementServiceGrpcTransport

from sprongus.adapters.kms_gcp import GcpKmsMasterKeyProvider
from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.kms import KmsOptions, ProviderUri, resource_match

DEFAULT_HOST = "cloudkms.googleapis.com"


def build(uri: ProviderUri, options: KmsOptions) -> GcpKmsMasterKeyProvider:
    resource_match(uri)
    # Retry only what is certainly safe and transient, and never past the timeout: the SDK default is 60 s. In
    # rotate-master a quota refusal (RESOURCE_EXHAUSTED, 429) is retried too, with truncated exponential backoff as
    # Google advises: the default concurrency (24) can outrun a project's quota for a moment. An API request gets
    # its 503 at once instead of holding a worker thread for the whole timeout.
    def bounded(*transient: type[Exception]) -> retry.Retry:
        return retry.Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=options.timeout,
                           predicate=retry.if_exception_type(*transient))

    return GcpKmsMasterKeyProvider(client(uri.endpoint, options), uri.resource, options.timeout,
                                   bounded(exceptions.ServiceUnavailable),
                                   bulk_retry=bounded(exceptions.ServiceUnavailable, exceptions.ResourceExhausted))


def client(endpoint: str | None, options: KmsOptions) -> KeyManagementServiceClient:
    parts = urlsplit(endpoint or f"https://{DEFAULT_HOST}")
    if parts.scheme == "http":
        host = parts.netloc if parts.port else f"{parts.hostname}:80"
        return KeyManagementServiceClient(
            transport=KeyManagementServiceGrpcTransport(channel=grpc.insecure_channel(host)))
    host = f"{parts.hostname}:{parts.port or 443}"
    ssl = grpc.ssl_channel_credentials(root_certificates=_read_ca(options.ca_file)) if options.ca_file else None
    try:
        transport = KeyManagementServiceGrpcTransport(host=host, ssl_channel_credentials=ssl)
    except DefaultCredentialsError:
        if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):  # set, and the file is missing or not credentials
            # Not google-auth's text: it quotes the file's contents when they are not what it expects.
            raise ConfigError("GOOGLE_APPLICATION_CREDENTIALS: the file it names is missing, unreadable or not a "
                              "Google credentials file (a service account key or an external account "
                              "configuration, as JSON)") from None
        raise ConfigError("SPRONGUS_KEY_PROVIDER: no Google credentials for the gcp provider: set "
                          "GOOGLE_APPLICATION_CREDENTIALS or run with an attached service account (ADC)") from None
    return KeyManagementServiceClient(transport=transport)


def _read_ca(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        raise ConfigError(f"SPRONGUS_KMS_CA_FILE: cannot read {path}") from None
