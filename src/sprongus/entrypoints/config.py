"""The one place that reads the settings from the environment: `SPRONGUS_*` (and the file SPRONGUS_ENV_FILE names)
and the server's settings. The log level, debug tracebacks and NO_COLOR are in env_flags.py."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sprongus.domain.credentials import one_userinfo, token_text, without_userinfo
from sprongus.domain.errors import ConfigError

if TYPE_CHECKING:
    from sprongus.adapters.dek_cache import DekCachePolicy

PROFILES = ("test", "dev", "prod")
APP_NAME = "sprongus"
DEFAULT_RATE_LIMITS = {"reveal": "10/minute", "write": "120/minute", "redeem": "30/minute",
                       "reveal_batch": "60/minute", "reveal_workload": "600/minute", "exchange": "60/minute",
                       "unauthenticated": "60/minute"}


@dataclass(frozen=True)
class Settings:
    """Every setting of one process, read once at start-up from the environment and the file SPRONGUS_ENV_FILE names."""

    env: str = "dev"
    home: Path | None = None
    database_url: str | None = field(default=None, repr=False)  # may carry the role's password
    db_statement_timeout: float = 5.0  # seconds, Postgres: the server cancels, the client stops waiting soon after
    db_connect_timeout: float = 5.0  # seconds, Postgres (libpq counts whole seconds, 2 at least)
    ready_max_age: float = 10.0  # seconds a /v1/health/ready result is reused by its process
    key_provider: str | None = None
    master_keys: str | None = field(default=None, repr=False)
    hmac_keys: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    retired_key_providers: tuple[str, ...] = ()
    allow_local_keys: bool = False  # prod: admit the file and keychain providers (a single-host deployment)
    keychain_timeout: float = 5.0
    rate_limits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    rate_limit_storage: str = field(default="memory://", repr=False)  # may carry Redis's password
    reveal_max_age: int = 900
    token_cache_ttl: float = 1.0  # seconds another process's token revocation may take to reach this one
    batch_size: int = 500
    max_versions: int = 10  # kept per secret, the current one included
    delete_retention: int = 30 * 86400  # seconds a soft-deleted secret waits for `secrets purge-expired`
    kms_endpoint: str | None = None
    kms_ca_file: str | None = None
    kms_timeout: float = 10.0
    kms_concurrency: int | None = None  # default: profiles.KMS_CONCURRENCY (gcp 24, other KMS 16, local 1)
    dek_cache: DekCachePolicy | None = None  # SPRONGUS_DEK_CACHE: unwrapped DEKs kept in memory (a KMS only)
    trusted_proxies: int = 0
    ipv6_prefix: int = 64  # what a per-address limit counts an IPv6 client by: its /64 by default
    remote: bool = False
    api_url: str | None = None
    api_token: str | None = field(default=None, repr=False)
    oidc_issuer: str | None = None  # people's IdP, published at /v1/auth/config for `sprongus login --oidc`
    oidc_client_id: str | None = None
    oidc_audience: str | None = None
    oidc_token_file: Path | None = None  # a workload's JWT (a Kubernetes projected token), exchanged by --remote

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The environment, plus the file SPRONGUS_ENV_FILE names (the environment wins over the file).

        No `.env` is read implicitly: a cloned repository's `.env` once switched the CLI to --remote against its own
        API URL, and the user's next `secrets set` went there while the screen said "created".
        """
        env = dict(os.environ if environ is None else environ)
        if env.get("SPRONGUS_ENV_FILE"):
            env = {**env_file_values(env["SPRONGUS_ENV_FILE"]), **env}
        return cls.from_mapping(env)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        profile = env.get("SPRONGUS_ENV", "dev")
        if profile not in PROFILES:
            raise ConfigError("SPRONGUS_ENV: must be one of test, dev, prod")
        limits = {name: env.get(f"SPRONGUS_RATE_LIMIT_{name.upper()}", default)
                  for name, default in DEFAULT_RATE_LIMITS.items()}
        home = env.get("SPRONGUS_HOME")
        key_file = env.get("SPRONGUS_KEY_FILE")
        retired = env.get("SPRONGUS_KEY_PROVIDERS_RETIRED", "")
        return cls(
            env=profile,
            home=Path(home).expanduser() if home else None,
            database_url=_url(env, "SPRONGUS_DATABASE_URL", one_userinfo),
            db_statement_timeout=_number(env, "SPRONGUS_DB_STATEMENT_TIMEOUT", 5.0, 0.1, 3600.0),
            db_connect_timeout=_number(env, "SPRONGUS_DB_CONNECT_TIMEOUT", 5.0, 2.0, 300.0),
            ready_max_age=_number(env, "SPRONGUS_READY_MAX_AGE", 10.0, 0.0, 300.0),
            key_provider=env.get("SPRONGUS_KEY_PROVIDER") or None,
            master_keys=env.get("SPRONGUS_MASTER_KEYS") or None,
            hmac_keys=env.get("SPRONGUS_HMAC_KEYS") or None,
            key_file=Path(key_file).expanduser() if key_file else None,
            retired_key_providers=tuple(p.strip() for p in retired.split(",") if p.strip()),
            allow_local_keys=env.get("SPRONGUS_ALLOW_LOCAL_KEYS", "") in ("1", "true", "yes"),
            keychain_timeout=_number(env, "SPRONGUS_KEYCHAIN_TIMEOUT", 5.0, 0.1, 120.0),
            rate_limits=limits,
            rate_limit_storage=env.get("SPRONGUS_RATE_LIMIT_STORAGE", "memory://"),
            reveal_max_age=int(_number(env, "SPRONGUS_REVEAL_MAX_AGE", 900, 1, 86400 * 30)),
            token_cache_ttl=_number(env, "SPRONGUS_TOKEN_CACHE_TTL", 1.0, 0.0, 60.0),
            batch_size=int(_number(env, "SPRONGUS_BATCH_SIZE", 500, 1, 100_000)),
            max_versions=int(_number(env, "SPRONGUS_MAX_VERSIONS", 10, 1, 1000)),
            delete_retention=_retention(env),
            kms_endpoint=_url(env, "SPRONGUS_KMS_ENDPOINT", without_userinfo),
            kms_ca_file=env.get("SPRONGUS_KMS_CA_FILE") or None,
            kms_timeout=_number(env, "SPRONGUS_KMS_TIMEOUT", 10.0, 0.1, 300.0),
            kms_concurrency=int(_number(env, "SPRONGUS_KMS_CONCURRENCY", 0, 1, 256)) or None,
            dek_cache=_dek_cache(env),
            trusted_proxies=int(_number(env, "SPRONGUS_TRUSTED_PROXIES", 0, 0, 10)),
            ipv6_prefix=int(_number(env, "SPRONGUS_RATE_LIMIT_IPV6_PREFIX", 64, 32, 128)),
            remote=env.get("SPRONGUS_REMOTE", "") in ("1", "true", "yes"),
            api_url=_url(env, "SPRONGUS_API_URL", without_userinfo),
            api_token=token_text("SPRONGUS_TOKEN", env.get("SPRONGUS_TOKEN", "")) or None,
            oidc_issuer=_url(env, "SPRONGUS_OIDC_ISSUER", without_userinfo),
            oidc_client_id=env.get("SPRONGUS_OIDC_CLIENT_ID") or None,
            oidc_audience=env.get("SPRONGUS_OIDC_AUDIENCE") or None,
            oidc_token_file=Path(env["SPRONGUS_OIDC_TOKEN_FILE"]).expanduser()
            if env.get("SPRONGUS_OIDC_TOKEN_FILE") else None,
        )

    @property
    def data_dir(self) -> Path:
        if self.home:
            return self.home
        from platformdirs import user_data_path

        return user_data_path(APP_NAME)

    @property
    def key_file_path(self) -> Path:
        if self.key_file:
            return self.key_file
        if self.home:
            return self.home / "master.key"
        from platformdirs import user_config_path

        return user_config_path(APP_NAME) / "master.key"

    @property
    def api_token_file(self) -> Path:
        """Where `sprongus login` keeps API tokens when there is no OS keychain: beside the key file's default."""
        if self.home:
            return self.home / "api-tokens.json"
        from platformdirs import user_config_path

        return user_config_path(APP_NAME) / "api-tokens.json"

    @property
    def vault_id(self) -> str:
        """Names this vault's keychain item: one per SPRONGUS_HOME, so separate homes get separate keys."""
        if not self.home:
            return "default"
        return hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:16]


def server_bind(environ: Mapping[str, str] | None = None) -> str:
    """SPRONGUS_BIND, else loopback: a TLS-terminating proxy goes in front."""
    return (os.environ if environ is None else environ).get("SPRONGUS_BIND") or "127.0.0.1:8000"


def server_workers(environ: Mapping[str, str] | None = None) -> int:
    """WEB_CONCURRENCY (gunicorn's own convention), else 2 per CPU and at least 2."""
    raw = (os.environ if environ is None else environ).get("WEB_CONCURRENCY", "").strip()
    if not raw:
        return max(2, 2 * (os.cpu_count() or 1))
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError("WEB_CONCURRENCY: must be a positive integer")
    return int(raw)


def _retention(env: Mapping[str, str]) -> int:
    """SPRONGUS_DELETE_RETENTION: `30d`, `12h`, `90m` or seconds (0: purge-expired destroys every deleted one)."""
    raw = env.get("SPRONGUS_DELETE_RETENTION", "").strip()
    if raw == "":
        return 30 * 86400
    if raw == "0":
        return 0
    from sprongus.domain.api_token import parse_ttl  # only when set: a --remote command never needs the module
    from sprongus.domain.errors import ValidationError

    try:
        return parse_ttl(raw)
    except ValidationError:
        raise ConfigError("SPRONGUS_DELETE_RETENTION: must be seconds or a number with a unit s, m, h or d "
                          "(e.g. 30d), at most 366 days") from None


def _dek_cache(env: Mapping[str, str]) -> DekCachePolicy | None:
    raw = env.get("SPRONGUS_DEK_CACHE")
    if raw is None or raw.strip() in ("", "off"):
        return None  # the usual case: no import of the cache for every command's start-up
    from sprongus.adapters.dek_cache import parse_dek_cache

    return parse_dek_cache(raw)


def _url(env: Mapping[str, str], name: str, check: Callable[[str, str], str]) -> str | None:
    return check(name, env[name]) if env.get(name) else None


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low:g} and {high:g}")
    return value


def env_file_values(name: str) -> dict[str, str]:
    """The `SPRONGUS_*` lines of an env file (python-dotenv syntax, no interpolation), except SPRONGUS_ENV (a file
    must not switch dev to prod) and SPRONGUS_ENV_FILE (one file, no chains)."""
    from io import StringIO

    from dotenv import dotenv_values

    try:
        text = Path(name).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"SPRONGUS_ENV_FILE: the file cannot be read ({reason})") from None
    except UnicodeDecodeError:
        raise ConfigError("SPRONGUS_ENV_FILE: the file must be UTF-8 text") from None
    return {k: v for k, v in dotenv_values(stream=StringIO(text), interpolate=False).items()
            if k.startswith("SPRONGUS_") and k not in ("SPRONGUS_ENV", "SPRONGUS_ENV_FILE") and v is not None}
