"""The composition root: the only non-test module that chooses adapters.

One Selector per choice (key provider, storage backend, rate-limit storage), keyed on configuration;
`build_container` resolves every port once (a local CLI command: those that can fail), so a bad setting fails at
start-up with a clear message rather than on the first request.
"""

from __future__ import annotations

import errno
import logging
import operator
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from sprongus.adapters.clock_system import SystemClock
from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
from sprongus.adapters.keys_composite import CompositeHmacKeyring, CompositeMasterKeyProvider
from sprongus.adapters.random_os import OsRandomSource
from sprongus.adapters.rate_limit_limits import LimitsRateLimiter, UnlimitedRateLimiter
from sprongus.domain.envelope import Envelope
from sprongus.domain.errors import DISK_FULL, ConfigError, SprongusError, StorageUnavailable
from sprongus.entrypoints import key_material as km
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.deferred import Deferred
from sprongus.entrypoints.profiles import KMS_SCHEMES, container_config
from sprongus.entrypoints.storage import embedded_storage, memory_storage, server_storage
from sprongus.ports.crypto import MasterKeyProvider
from sprongus.ports.repository import UnitOfWork
from sprongus.ports.storage import Storage
from sprongus.service.audit_checkpoints import CheckpointSigner
from sprongus.service.auditing import Auditor
from sprongus.service.deps import ServiceDeps
from sprongus.service.parallel import BoundedPool
from sprongus.service.seal_ahead import SealAhead
from sprongus.service.sealing import Sealer
from sprongus.service.secrets import SecretOps
from sprongus.service.throttle import Throttle
from sprongus.service.vault_hmac import StoredHmacKeys, VaultHmacKeyring
from sprongus.service.vault_keys import KeySource, VaultKeys

if TYPE_CHECKING:  # loaded by the providers that need them: a local command builds few of them
    from sprongus.entrypoints.kms import KmsOptions
    from sprongus.ports.identity import JwtVerifier
    from sprongus.ports.tokens import ApiStores, ApiTokenStore
    from sprongus.service.audit_reading import AuditReader
    from sprongus.service.batch_reveal import BatchRevealOps
    from sprongus.service.federation import TokenExchange, TokenSelfService
    from sprongus.service.history import HistoryOps
    from sprongus.service.reveal_tokens import RevealTokenOps
    from sprongus.service.rotation import RotationOps
    from sprongus.service.tokens import AuthTimeVerifier, TokenService
    from sprongus.service.transfer import TransferOps
    from sprongus.service.trusts import TrustOps

log = logging.getLogger("sprongus")


def _key_material_selector(config: Any, notice: Any, backend: Any) -> providers.Selector[Any]:
    return providers.Selector(
        backend,
        memory=providers.Singleton(km.memory_keys),
        env=providers.Singleton(km.env_keys, config.keys.master_keys, config.keys.hmac_keys),
        file=providers.Singleton(km.file_keys, config.keys.file, notice, "the file key provider is in use"),
        keychain=providers.Singleton(km.keychain_keys, config.keys.vault_id, config.keys.keychain_timeout,
                                     config.keys.file, notice),
        # ["provider"], not .provider: every provider has a .provider attribute (its Delegate), so the dotted
        # form would inject the config.keys option itself instead of the URI.
        **{vendor: providers.Singleton(_kms_keys, config.keys["provider"], config.kms, config.keys.hmac_keys)
           for vendor in KMS_SCHEMES},
    )


def _kms_options(kms: dict[str, Any]) -> KmsOptions:
    from sprongus.entrypoints.kms import KmsOptions

    return KmsOptions(kms["endpoint"], kms["ca_file"], kms["timeout"], kms["allow_http"],
                      max(10, kms["concurrency"]))


def _kms_keys(uri: str, kms: dict[str, Any], hmac_keys: str) -> km.KeyMaterial:
    from sprongus.entrypoints.kms import kms_keys

    return kms_keys(uri, _kms_options(kms), hmac_keys or None)


def _retired(config: dict[str, Any], kms: dict[str, Any], notice: Any) -> list[km.KeyMaterial]:
    """Providers kept for decryption during a provider switch (local names or KMS URIs); they never create keys."""
    build = {"env": lambda: km.env_keys(config["master_keys"], config["hmac_keys"]),
             "file": lambda: km.file_keys(config["file"], create=False),
             "keychain": lambda: km.keychain_keys(config["vault_id"], config["keychain_timeout"], config["file"],
                                                  notice, create=False)}
    materials = []
    for provider in config["retired"]:
        if provider in build:
            materials.append(build[provider]())
        elif provider == "memory":
            raise ConfigError("SPRONGUS_KEY_PROVIDERS_RETIRED: memory keys die with their process")
        else:
            materials.append(_kms_keys(provider, kms, ""))
    return materials


def _master_keys(current: km.KeyMaterial, retired: list[km.KeyMaterial],
                 dek_cache: dict[str, Any]) -> MasterKeyProvider:
    keys = CompositeMasterKeyProvider(current.master, [m.master for m in retired], reload=current.reload,
                                      unreachable=current.stands_in_for)
    if not dek_cache["enabled"]:
        return keys
    from sprongus.adapters.dek_cache import CachingMasterKeyProvider, DekCachePolicy  # opt-in: loaded only then

    return CachingMasterKeyProvider(keys, DekCachePolicy(dek_cache["ttl"], dek_cache["uses"], dek_cache["entries"]))


def _seal_ahead(uow: UnitOfWork, backend: str) -> SealAhead | None:
    """Writes seal before their transaction where it holds the whole store and sealing is a KMS round trip."""
    return SealAhead() if uow.serializes_writes and backend in KMS_SCHEMES else None


def _hmac_keys(current: km.KeyMaterial, retired: list[km.KeyMaterial],
               stored: VaultHmacKeyring) -> CompositeHmacKeyring:
    """Signs with the provider's own HMAC keys (SPRONGUS_HMAC_KEYS, or a local keyring's), else with the keys the
    vault keeps; the vault's keys always verify, so values signed before a provider switch still check."""
    if current.hmac is None:
        return CompositeHmacKeyring(stored, [m.hmac for m in retired])
    return CompositeHmacKeyring(current.hmac, [stored, *(m.hmac for m in retired)])


def _vault_keys(storage: Storage, envelope: Envelope, clock: Any, random: Any, material: km.KeyMaterial,
                stored_hmac: StoredHmacKeys) -> VaultKeys:
    source = KeySource(material.location, material.has_key, material.reload, material.add_hmac_key,
                       material.generation, material.stands_in_for)
    return VaultKeys(storage.vault_keys, envelope, clock, random, source,
                     stored_hmac if material.hmac is None else None)


def _audit_signer(storage: Storage, hmac_keys: CompositeHmacKeyring) -> bool:
    """Resolved at start-up (PORTS), before any event is written: from then on the trail signs its checkpoints with
    a key derived from the vault's value-HMAC key, which the database roles cannot read."""
    if storage.audit_trail is not None:
        storage.audit_trail.use_signer(CheckpointSigner(hmac_keys))
    return True


def _audit_reader(storage: Storage, deps: ServiceDeps, _signing: bool) -> AuditReader:
    """`_signing` (audit_signer): a reader resolved on its own still comes after the signer."""
    from sprongus.service.audit_reading import AuditReader  # the audit commands and the API only

    return AuditReader(storage.audit_trail, deps.auditor, deps.clock, deps.batch_size)


def _jwt_verifier(clock: Any, allow_http: bool) -> JwtVerifier:
    """PyJWT loads only when the API starts: a local CLI command never verifies a JWT."""
    from sprongus.adapters.jwks_pyjwt import PyJwtVerifier

    return PyJwtVerifier(clock, allow_http)


def _api_token_store(stores: ApiStores, cache_ttl: float) -> ApiTokenStore:
    """Verified tokens kept `cache_ttl` seconds per process (adapters/token_cache.py): the bound on how long a
    revocation made elsewhere takes to reach this process. 0: every request asks the store."""
    if cache_ttl <= 0:
        return stores.api_tokens
    from sprongus.adapters.token_cache import CachingApiTokenStore

    return CachingApiTokenStore(stores.api_tokens, cache_ttl)


def _service(path: str) -> Deferred:
    """A use case whose module loads when its provider first builds it (entrypoints/deferred.py)."""
    return Deferred(f"sprongus.service.{path}")


def _seconds(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)
    notice = providers.Object(log.warning)

    clock = providers.Singleton(SystemClock)
    random = providers.Singleton(OsRandomSource)
    data_cipher = providers.Singleton(AesGcmDataCipher, random)
    key_material = _key_material_selector(config, notice, config.keys.backend)
    retired_key_material = providers.Singleton(_retired, config.keys, config.kms, notice)
    master_keys = providers.Singleton(_master_keys, key_material, retired_key_material, config.dek_cache)
    vault_hmac_keys = providers.Singleton(VaultHmacKeyring)
    hmac_keys = providers.Singleton(_hmac_keys, key_material, retired_key_material, vault_hmac_keys)
    envelope = providers.Singleton(
        Envelope, providers.Dict({AesGcmDataCipher.alg: data_cipher}), AesGcmDataCipher.alg, master_keys, hmac_keys)

    # Every store comes from one backend, chosen once: they share a database and its transactions.
    storage = providers.Selector(
        config.database.backend,
        memory=providers.Singleton(memory_storage),
        sqlite=providers.Singleton(embedded_storage, config.database.url),
        postgres=providers.Singleton(server_storage, config.database.url, config.database.statement_timeout,
                                     config.database.connect_timeout),
    )
    database = providers.Callable(operator.attrgetter("database"), storage)
    unit_of_work = providers.Callable(operator.attrgetter("uow"), storage)
    audit_sink = providers.Callable(operator.attrgetter("audit"), storage)
    audit_trail = providers.Callable(operator.attrgetter("audit_trail"), storage)
    api_stores = providers.Callable(operator.methodcaller("api_stores"), storage)
    api_token_store = providers.Singleton(_api_token_store, api_stores, config.api.token_cache_ttl)
    reveal_token_store = providers.Callable(operator.attrgetter("reveal_tokens"), api_stores)
    idempotency_store = providers.Callable(operator.attrgetter("idempotency"), api_stores)
    trust_store = providers.Callable(operator.attrgetter("trusts"), api_stores)
    jwt_replay_store = providers.Callable(operator.attrgetter("jwt_replay"), api_stores)

    rate_limiter = providers.Selector(
        config.rate_limit.backend,
        memory=providers.Singleton(LimitsRateLimiter, config.rate_limit.policies, "memory://"),
        shared=providers.Singleton(LimitsRateLimiter, config.rate_limit.policies, config.rate_limit.storage),
        off=providers.Singleton(UnlimitedRateLimiter),
    )
    throttle = providers.Singleton(Throttle, rate_limiter, config.rate_limit.ipv6_prefix)
    token_service: providers.Singleton[TokenService] = providers.Singleton(
        _service("tokens:TokenService"), api_token_store, clock, random, throttle)
    recent_auth: providers.Singleton[AuthTimeVerifier] = providers.Singleton(
        _service("tokens:AuthTimeVerifier"), config.api.reveal_max_age, clock)
    trust_ops: providers.Singleton[TrustOps] = providers.Singleton(
        _service("trusts:TrustOps"), trust_store, clock, config.oidc.allow_http)

    vault_key_store = providers.Callable(operator.attrgetter("vault_keys"), storage)
    stored_hmac_keys = providers.Singleton(StoredHmacKeys, vault_key_store, envelope, clock, random, vault_hmac_keys)
    vault_keys = providers.Singleton(_vault_keys, storage, envelope, clock, random, key_material, stored_hmac_keys)
    service_deps = providers.Singleton(
        ServiceDeps, uow=unit_of_work, sealer=providers.Singleton(Sealer, envelope, clock, random, vault_keys),
        auditor=providers.Singleton(Auditor, audit_sink, clock),
        throttle=throttle,
        pool=providers.Singleton(BoundedPool, config.kms.concurrency), clock=clock, random=random,
        batch_size=config.batch_size, audit_trail=audit_trail, max_versions=config.history.max_versions,
        delete_retention=providers.Factory(_seconds, config.history.delete_retention),
        seal_ahead=providers.Callable(_seal_ahead, unit_of_work, config.keys.backend))
    secret_ops = providers.Singleton(SecretOps, service_deps)
    history_ops: providers.Singleton[HistoryOps] = providers.Singleton(_service("history:HistoryOps"), service_deps)
    transfer_ops: providers.Singleton[TransferOps] = providers.Singleton(_service("transfer:TransferOps"), service_deps)
    rotation_ops: providers.Singleton[RotationOps] = providers.Singleton(_service("rotation:RotationOps"), service_deps)
    reveal_token_ops: providers.Singleton[RevealTokenOps] = providers.Singleton(
        _service("reveal_tokens:RevealTokenOps"), service_deps, reveal_token_store)
    jwt_verifier = providers.Singleton(_jwt_verifier, clock, config.oidc.allow_http)
    token_exchange: providers.Singleton[TokenExchange] = providers.Singleton(
        _service("federation:TokenExchange"), service_deps, trust_store, jwt_replay_store, jwt_verifier, token_service)
    token_self_service: providers.Singleton[TokenSelfService] = providers.Singleton(
        _service("federation:TokenSelfService"), service_deps, api_token_store)
    batch_reveal_ops: providers.Singleton[BatchRevealOps] = providers.Singleton(
        _service("batch_reveal:BatchRevealOps"), service_deps)
    audit_signer = providers.Singleton(_audit_signer, storage, hmac_keys)
    audit_reader = providers.Singleton(_audit_reader, storage, service_deps, audit_signer)


# Resolved by every build: what a setting, a driver or an SDK can fail in, and the audit trail's signer.
PORTS = ("clock", "data_cipher", "key_material", "envelope", "storage", "rate_limiter", "audit_signer", "secret_ops",
         "vault_keys")
# Resolved at start-up by the API's build too. A local CLI command resolves them on first use, if at all: their
# constructors only keep what PORTS resolved (nothing left to fail), and their modules cost a command that never
# calls them (the audit reader's ~1.5 ms).
SERVER_PORTS = ("token_service", "transfer_ops", "rotation_ops", "reveal_token_ops", "audit_reader")


def build_container(settings: Settings | None = None, notice: Callable[[str], None] | None = None,
                    *, local_owner: bool = False) -> Container:
    """A container for these settings (default: the environment) with every port resolved.

    `local_owner`: the CLI's local mode, whose only caller is the vault's owner and is never rate limited (and
    whose SERVER_PORTS are built on first use).
    """
    settings = settings or Settings.from_env()
    container = Container()
    config = container_config(settings)
    if local_owner:
        config["rate_limit"]["backend"] = "off"
    container.config.from_dict(config)
    if notice is not None:
        container.notice.override(providers.Object(notice))
    for port in PORTS if local_owner else PORTS + SERVER_PORTS:
        try:
            getattr(container, port)()
        except SprongusError:
            raise
        except Exception as exc:  # a driver or SDK failing at start-up: say which port, not a traceback
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # a new key file on a full disk
                raise StorageUnavailable(DISK_FULL) from exc
            # Its class only: a library's text is not ours to repeat (an AWS credential_process's stderr, say,
            # which may name a password). The text stays in the chained exception, for a debugger.
            raise ConfigError(f"cannot start {port.replace('_', ' ')}: {type(exc).__name__}") from exc
    container.vault_keys().check()  # a lost, replaced or wrong master key is refused here, before any write
    return container
