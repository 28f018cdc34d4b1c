"""Profiles turn Settings into the container's configuration: which adapter serves each port.

A profile only sets defaults; every explicit setting overrides it. `prod` refuses what is unsafe there.
"""

from __future__ import annotations

from typing import Any

from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.config import Settings

LOCAL_KEY_BACKENDS = ("memory", "env", "file", "keychain")
KMS_SCHEMES = ("gcp", "azure", "aws", "vault")  # the KMS registry: a vendor here has entrypoints/kms_clients/<it>.py
# SPRONGUS_KMS_CONCURRENCY when unset: KMS calls in flight during bulk work (local keys: 1, threads would only cost).
# Cloud KMS has no re-encrypt, so its re-wrap is Decrypt then Encrypt, two round trips in a row: at 20 ms a call, 16 in
# flight cap a rotation near 390 secrets/s, 24 near 590/s. That is up to ~1,200 requests/s, more than Cloud KMS's
# default quota (60,000/min): in rotate-master a quota refusal is retried with backoff (kms_clients/gcp.py); see
# docs/providers.md.
KMS_CONCURRENCY = {scheme: 16 for scheme in KMS_SCHEMES} | {"gcp": 24}


def default_kms_concurrency(backend: str) -> int:
    """SPRONGUS_KMS_CONCURRENCY's default for a key backend: its KMS_CONCURRENCY, 1 for local keys."""
    return KMS_CONCURRENCY.get(backend, 1)


def database_url(settings: Settings) -> str:
    """The explicit URL, or the profile's default: in memory for test, the embedded SQLite vault for dev."""
    if settings.database_url:
        return settings.database_url
    if settings.env == "prod":
        raise ConfigError("SPRONGUS_DATABASE_URL: required when SPRONGUS_ENV=prod (postgresql://...)")
    if settings.env == "test":
        return "memory://"
    return f"sqlite:///{settings.data_dir / 'vault.db'}"


def database_backend(settings: Settings) -> str:
    url = database_url(settings)
    scheme = url.split(":", 1)[0]
    backends = {"memory": "memory", "sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}
    if scheme not in backends:
        raise ConfigError("SPRONGUS_DATABASE_URL: must start with sqlite:///, postgresql:// or memory://")
    return backends[scheme]


def key_backend(settings: Settings) -> str:
    provider = settings.key_provider
    if provider is None:
        if settings.master_keys:
            return "env"
        if settings.env == "prod":
            raise ConfigError("SPRONGUS_KEY_PROVIDER: required when SPRONGUS_ENV=prod (a KMS URI)")
        return "memory" if settings.env == "test" else "keychain"
    return key_backend_of(provider)


def key_backend_of(provider: str) -> str:
    if provider in LOCAL_KEY_BACKENDS:
        return provider
    scheme = provider.split("://", 1)[0]
    if scheme in KMS_SCHEMES and "://" in provider:
        return scheme
    raise ConfigError("SPRONGUS_KEY_PROVIDER: must be env, keychain, file, memory or a "
                      + ", ".join(f"{scheme}://" for scheme in KMS_SCHEMES) + " URI")


def rate_limit_backend(settings: Settings) -> str:
    scheme = settings.rate_limit_storage.split("://", 1)[0]
    if scheme not in ("memory", "redis", "rediss", "redis+sentinel"):
        raise ConfigError("SPRONGUS_RATE_LIMIT_STORAGE: must be memory:// or a redis:// URL")
    return "memory" if scheme == "memory" else "shared"


def container_config(settings: Settings) -> dict[str, Any]:
    """The container's configuration tree; raises ConfigError for anything unsafe or malformed."""
    db, keys, limits = database_backend(settings), key_backend(settings), rate_limit_backend(settings)
    if settings.env == "prod":
        # prod takes only KMS providers: a key in the environment (env) or in one process (memory) never, a key on
        # the host's disk or keychain (file, keychain) only when the operator says it is a single-host deployment.
        if keys in ("env", "memory"):
            raise ConfigError(f"SPRONGUS_KEY_PROVIDER: the {keys} key provider is refused when SPRONGUS_ENV=prod, "
                              "even with SPRONGUS_ALLOW_LOCAL_KEYS=1; use a KMS provider")
        if keys in LOCAL_KEY_BACKENDS and not settings.allow_local_keys:
            raise ConfigError(f"SPRONGUS_KEY_PROVIDER: the {keys} key provider is refused when SPRONGUS_ENV=prod "
                              "unless SPRONGUS_ALLOW_LOCAL_KEYS=1 (a single-host deployment); use a KMS provider")
        if db == "memory":
            raise ConfigError("SPRONGUS_DATABASE_URL: in-memory storage is refused when SPRONGUS_ENV=prod")
        if limits == "memory":
            raise ConfigError("SPRONGUS_RATE_LIMIT_STORAGE: in-memory rate limits are refused when "
                              "SPRONGUS_ENV=prod (several workers would not share them); use redis://")
    if settings.dek_cache is not None and keys not in KMS_SCHEMES:
        raise ConfigError("SPRONGUS_DEK_CACHE: only with a KMS key provider; a local key unwraps in this process "
                          "already, so a cache would only keep more keys in memory")
    for provider in settings.retired_key_providers:
        # Validate each now: a typo must fail at start-up. A retired local provider stays allowed in prod: it only
        # unwraps the data keys still on it while `keys rotate-master` moves them onto the KMS (the way off it).
        key_backend_of(provider)
    return {
        "env": settings.env,
        "database": {"backend": db, "url": database_url(settings), "statement_timeout": settings.db_statement_timeout,
                     "connect_timeout": settings.db_connect_timeout},
        "keys": {"backend": keys, "provider": settings.key_provider or keys,
                 "retired": list(settings.retired_key_providers),
                 "master_keys": settings.master_keys or "", "hmac_keys": settings.hmac_keys or "",
                 "file": str(settings.key_file_path), "vault_id": settings.vault_id,
                 "keychain_timeout": settings.keychain_timeout},
        "rate_limit": {"backend": limits, "storage": settings.rate_limit_storage,
                       "policies": dict(settings.rate_limits), "ipv6_prefix": settings.ipv6_prefix},
        "batch_size": settings.batch_size,
        "history": {"max_versions": settings.max_versions, "delete_retention": settings.delete_retention},
        "api": {"reveal_max_age": settings.reveal_max_age, "trusted_proxies": settings.trusted_proxies,
                "token_cache_ttl": settings.token_cache_ttl,
                "ready_max_age": settings.ready_max_age},
        "oidc": {"issuer": settings.oidc_issuer, "client_id": settings.oidc_client_id,
                 "audience": settings.oidc_audience, "allow_http": settings.env != "prod"},
        "kms": {"endpoint": settings.kms_endpoint, "ca_file": settings.kms_ca_file, "timeout": settings.kms_timeout,
                "allow_http": settings.env != "prod",
                "concurrency": settings.kms_concurrency or default_kms_concurrency(keys)},
        "dek_cache": {"enabled": False} if settings.dek_cache is None else {
            "enabled": True, "ttl": settings.dek_cache.ttl, "uses": settings.dek_cache.uses,
            "entries": settings.dek_cache.entries},
    }
