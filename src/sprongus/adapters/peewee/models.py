"""Peewee models of the live schema. Migrations keep their own copy of the DDL and never import these."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import peewee

from sprongus.adapters.peewee.fields import CryptoBytesField, MetaField, UtcDateTimeField

M = TypeVar("M", bound=peewee.Model)


class BaseModel(peewee.Model):
    class Meta:
        legacy_table_names = False


class SecretKV(BaseModel):
    id = peewee.TextField(primary_key=True)
    owner_type = peewee.TextField()
    owner_id = peewee.TextField(null=True)
    key_name = peewee.TextField()
    ciphertext = CryptoBytesField()
    dek_wrapped = CryptoBytesField()
    nonce = CryptoBytesField()
    alg = peewee.TextField()
    master_key_id = peewee.TextField()
    version = peewee.IntegerField()
    created_at = UtcDateTimeField()
    updated_at = UtcDateTimeField()
    last_rotated_at = UtcDateTimeField(null=True)
    meta = MetaField()
    hmac = peewee.TextField(null=True)
    checksum = peewee.TextField()
    deleted_at = UtcDateTimeField(null=True)
    version_by = peewee.TextField(null=True)

    class Meta:
        table_name = "secret_kv"


class SecretVersionRow(BaseModel):
    """A version before the current one, stored as the secret_kv row was when it was current."""

    secret_id = peewee.TextField()
    owner_type = peewee.TextField()
    owner_id = peewee.TextField(null=True)
    key_name = peewee.TextField()
    ciphertext = CryptoBytesField()
    dek_wrapped = CryptoBytesField()
    nonce = CryptoBytesField()
    alg = peewee.TextField()
    master_key_id = peewee.TextField()
    version = peewee.IntegerField()
    created_at = UtcDateTimeField()
    updated_at = UtcDateTimeField()
    last_rotated_at = UtcDateTimeField(null=True)
    meta = MetaField()
    hmac = peewee.TextField(null=True)
    checksum = peewee.TextField()
    version_by = peewee.TextField(null=True)

    class Meta:
        table_name = "secret_version"
        primary_key = peewee.CompositeKey("secret_id", "version")


class AuditEventRow(BaseModel):
    seq = peewee.BigAutoField()
    time = UtcDateTimeField()
    actor = peewee.TextField()
    action = peewee.TextField()
    scope = peewee.TextField(null=True)
    key_name = peewee.TextField(null=True)
    version = peewee.IntegerField(null=True)
    outcome = peewee.TextField()
    request_id = peewee.TextField(null=True)
    client_address = peewee.TextField(null=True)
    detail = MetaField()
    prev_hash = peewee.TextField()
    hash = peewee.TextField()

    class Meta:
        table_name = "audit_event"


class AuditCheckpointRow(BaseModel):
    seq = peewee.BigIntegerField(primary_key=True)  # the audit_event row that was the chain head
    count = peewee.BigIntegerField()
    head_hash = peewee.TextField()
    time = UtcDateTimeField()
    key_id = peewee.TextField(null=True)
    mac = peewee.TextField(null=True)

    class Meta:
        table_name = "audit_checkpoint"


class ApiTokenRow(BaseModel):
    id = peewee.TextField(primary_key=True)
    token_hash = peewee.TextField(unique=True)
    subject = peewee.TextField()
    scopes = peewee.TextField()
    projects = peewee.TextField()
    created_at = UtcDateTimeField()
    expires_at = UtcDateTimeField()
    auth_time = UtcDateTimeField()
    revoked_at = UtcDateTimeField(null=True)
    kind = peewee.TextField(default="operator")
    trust = peewee.TextField(null=True)
    key_prefix = peewee.TextField(default="")

    class Meta:
        table_name = "api_token"


class RevealTokenRow(BaseModel):
    token_hash = peewee.TextField(primary_key=True)
    subject = peewee.TextField()
    projects = peewee.TextField()
    admin = peewee.BooleanField()
    owner_type = peewee.TextField()
    owner_id = peewee.TextField(null=True)
    key_name = peewee.TextField()
    expires_at = UtcDateTimeField()
    seal = peewee.TextField()

    class Meta:
        table_name = "reveal_token"


class IdempotencyRow(BaseModel):
    subject = peewee.TextField()
    key = peewee.TextField()
    fingerprint = peewee.TextField()
    created_at = UtcDateTimeField()
    status = peewee.IntegerField(null=True)
    body = peewee.TextField(null=True)
    headers = peewee.TextField(null=True)

    class Meta:
        table_name = "idempotency_key"
        primary_key = peewee.CompositeKey("subject", "key")


class VaultKeyRow(BaseModel):
    kind = peewee.TextField()
    key_id = peewee.TextField()
    blob = CryptoBytesField()
    master_key_id = peewee.TextField()
    created_at = UtcDateTimeField()

    class Meta:
        table_name = "vault_key"
        primary_key = peewee.CompositeKey("kind", "key_id")


class TrustRow(BaseModel):
    name = peewee.TextField(primary_key=True)
    issuer = peewee.TextField()
    audience = peewee.TextField()
    jwks_url = peewee.TextField(null=True)
    claims = MetaField()  # {"claim": "glob", ...}
    subject_claim = peewee.TextField()
    subject_prefix = peewee.TextField()
    scopes = peewee.TextField()
    projects = peewee.TextField()
    key_prefix = peewee.TextField()
    ttl_seconds = peewee.IntegerField()
    kind = peewee.TextField()
    created_at = UtcDateTimeField()

    class Meta:
        table_name = "oidc_trust"


class JwtReplayRow(BaseModel):
    jti_hash = peewee.TextField(primary_key=True)
    expires_at = UtcDateTimeField()

    class Meta:
        table_name = "jwt_replay"


class _BoundOnFirstUse(Generic[M]):
    """A BoundModels attribute that binds its model on first read, then leaves it in the instance's __dict__ (which
    later reads find first). Binding deep-copies every field of the model (peewee's inheritance), ~0.5 ms a model,
    and a CLI command touches two or three of the ten."""

    def __init__(self, model: type[M]) -> None:
        self._model = model

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, models: BoundModels, owner: type | None = None) -> type[M]:
        # Two threads may bind at once; setdefault (one step under the GIL) hands both the one stored first. Each
        # keeping its own would break SQL: a statement naming two bindings of one model gets two table aliases.
        bound: type[M] = models.__dict__.setdefault(self._name, _bind(self._model, models.db))
        return bound


class BoundModels:
    """Model classes bound to one database, so several vaults (tests, restore drills) live in one process."""

    secret = _BoundOnFirstUse(SecretKV)
    secret_version = _BoundOnFirstUse(SecretVersionRow)
    audit = _BoundOnFirstUse(AuditEventRow)
    audit_checkpoint = _BoundOnFirstUse(AuditCheckpointRow)
    api_token = _BoundOnFirstUse(ApiTokenRow)
    reveal_token = _BoundOnFirstUse(RevealTokenRow)
    idempotency = _BoundOnFirstUse(IdempotencyRow)
    vault_key = _BoundOnFirstUse(VaultKeyRow)
    trust = _BoundOnFirstUse(TrustRow)
    jwt_replay = _BoundOnFirstUse(JwtReplayRow)

    def __init__(self, db: peewee.Database) -> None:
        self.db = db


def _bind(model: type[peewee.Model], db: peewee.Database) -> Any:
    meta = type("Meta", (), {"database": db, "table_name": model._meta.table_name})
    return type(model.__name__, (model,), {"Meta": meta, "__module__": model.__module__})
