"""Peewee stores for trusts and exchanged JWT ids (SQLite and Postgres)."""

from __future__ import annotations

from datetime import datetime

import peewee

from sprongus.adapters.peewee.db import storage_errors
from sprongus.adapters.peewee.models import BoundModels, TrustRow
from sprongus.adapters.peewee.tokens import operators_only
from sprongus.domain.errors import Conflict
from sprongus.domain.principal import TokenKind
from sprongus.domain.trust import Trust


def _split(text: str) -> frozenset[str]:
    return frozenset(part for part in text.split(",") if part)


class PeeweeTrustStore:
    def __init__(self, models: BoundModels) -> None:
        self._m = models.trust
        self._db = models.db

    def add(self, trust: Trust) -> None:
        with storage_errors(), operators_only("oidc_trust", "add or remove trusts", "auth trust"):
            try:
                with self._db.atomic():
                    self._m.insert(
                        name=trust.name, issuer=trust.issuer, audience=trust.audience, jwks_url=trust.jwks_url,
                        claims=dict(trust.claims), subject_claim=trust.subject_claim,
                        subject_prefix=trust.subject_prefix, scopes=",".join(sorted(trust.scopes)),
                        projects=",".join(sorted(trust.projects)), key_prefix=trust.key_prefix,
                        ttl_seconds=trust.ttl_seconds, kind=trust.kind.value, created_at=trust.created_at).execute()
            except peewee.IntegrityError:
                raise Conflict(f"trust {trust.name} exists; remove it first") from None

    def get(self, name: str) -> Trust | None:
        with storage_errors():
            row = self._m.get_or_none(self._m.name == name)
        return None if row is None else _trust(row)

    def by_issuer(self, issuer: str) -> list[Trust]:
        with storage_errors():
            return [_trust(r) for r in self._m.select().where(self._m.issuer == issuer).order_by(self._m.name)]

    def all(self) -> list[Trust]:
        with storage_errors():
            return [_trust(r) for r in self._m.select().order_by(self._m.name)]

    def remove(self, name: str) -> bool:
        with storage_errors(), operators_only("oidc_trust", "add or remove trusts", "auth trust"), \
                self._db.atomic():
            return bool(self._m.delete().where(self._m.name == name).execute())


def _trust(row: TrustRow) -> Trust:
    claims = row.claims if isinstance(row.claims, dict) else {}
    return Trust(name=row.name, issuer=row.issuer, audience=row.audience, scopes=_split(row.scopes),
                 jwks_url=row.jwks_url, claims=tuple(sorted((str(k), str(v)) for k, v in claims.items())),
                 subject_claim=row.subject_claim, subject_prefix=row.subject_prefix, projects=_split(row.projects),
                 key_prefix=row.key_prefix, ttl_seconds=row.ttl_seconds, kind=TokenKind(row.kind),
                 created_at=row.created_at)


class PeeweeJwtReplayStore:
    def __init__(self, models: BoundModels) -> None:
        self._m = models.jwt_replay
        self._db = models.db

    def claim(self, jti_hash: str, expires_at: datetime, now: datetime) -> bool:
        """The primary key decides between two workers exchanging the same JWT at once: one insert wins."""
        m = self._m
        with storage_errors():
            with self._db.atomic():
                m.delete().where(m.expires_at <= now).execute()  # expired JWTs are refused anyway: forget them
            try:
                with self._db.atomic():
                    m.insert(jti_hash=jti_hash, expires_at=expires_at).execute()
            except peewee.IntegrityError:
                return False
            return True

    def release(self, jti_hash: str) -> None:
        with storage_errors(), self._db.atomic():
            self._m.delete().where(self._m.jti_hash == jti_hash).execute()
