"""Peewee stores for API tokens, single-use reveal tokens and idempotency keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import peewee

from sprongus.adapters.peewee.db import storage_errors
from sprongus.adapters.peewee.dialect import dialect_of
from sprongus.adapters.peewee.models import ApiTokenRow, BoundModels
from sprongus.domain.api_token import ApiToken
from sprongus.domain.errors import PermissionDenied
from sprongus.domain.principal import Permission, TokenKind
from sprongus.ports.tokens import IDEMPOTENCY_TTL, IdempotencyRecord, RevealGrant, StoredResponse

_MAX_REVEAL_TTL = timedelta(hours=1)
INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE


def _split(text: str) -> frozenset[str]:
    return frozenset(part for part in text.split(",") if part)


_TOKEN_COLUMNS = ("id", "token_hash", "subject", "scopes", "projects", "created_at", "expires_at", "auth_time",
                  "revoked_at", "kind", "trust", "key_prefix")


class PeeweeApiTokenStore:
    def __init__(self, models: BoundModels) -> None:
        self._m = models.api_token
        self._db = models.db
        self._find = (f"SELECT {', '.join(_TOKEN_COLUMNS)} FROM api_token "  # noqa: S608 - constants only
                      f"WHERE token_hash = {self._db.param}")

    def add(self, token: ApiToken) -> None:
        with storage_errors(), operators_only("api_token", "issue or revoke API tokens", "tokens"), self._db.atomic():
            self._m.insert(id=token.id, token_hash=token.token_hash, subject=token.subject,
                           scopes=",".join(sorted(p.value for p in token.permissions)),
                           projects=",".join(sorted(token.projects)), created_at=token.created_at,
                           expires_at=token.expires_at, auth_time=token.auth_time, kind=token.kind.value,
                           trust=token.trust, key_prefix=token.key_prefix).execute()

    def find(self, token_hash: str) -> ApiToken | None:
        """Every API request runs this: one prepared statement, not a query rebuilt by peewee each time."""
        with storage_errors():
            row = self._db.execute_sql(self._find, [token_hash]).fetchone()  # type: ignore[no-untyped-call]
        if row is None:
            return None
        m = self._m
        values = dict(zip(_TOKEN_COLUMNS, row, strict=True))
        for name in ("created_at", "expires_at", "auth_time", "revoked_at"):
            values[name] = getattr(m, name).python_value(values[name])
        return _token(m(**values))

    def all(self) -> list[ApiToken]:
        with storage_errors():
            return [_token(row) for row in self._m.select().order_by(self._m.created_at)]

    def revoke(self, token_id: str, when: datetime) -> bool:
        with storage_errors(), operators_only("api_token", "issue or revoke API tokens", "tokens"), self._db.atomic():
            m = self._m
            return bool(m.update(revoked_at=when).where((m.id == token_id) & m.revoked_at.is_null()).execute())

    def revoke_by_hash(self, token_hash: str, when: datetime) -> bool:
        m = self._m
        with storage_errors(), self._db.atomic():
            if isinstance(self._db, peewee.PostgresqlDatabase):  # the app role revokes only through this function
                row = self._db.execute_sql("SELECT sprongus_revoke_token(%s, %s)",  # type: ignore[no-untyped-call]
                                           [token_hash, m.revoked_at.db_value(when)]).fetchone()
                return bool(row[0])
            return bool(m.update(revoked_at=when).where((m.token_hash == token_hash)
                                                        & m.revoked_at.is_null()).execute())


@contextmanager
def operators_only(table: str, what: str, command: str) -> Iterator[None]:
    """Postgres keeps operators' rights from the app role (it may not mint operator tokens nor edit trusts): doing
    so as it said "database error: permission denied for table api_token". Exit 4 (PermissionDenied), not 2: the
    database refused a right this login lacks, like any other refusal; the fix is to run as another login."""
    try:
        yield
    except peewee.ProgrammingError as exc:
        driver_error = exc.__cause__ or exc.__context__  # peewee re-raises the driver's error as its own
        if INSUFFICIENT_PRIVILEGE not in (getattr(driver_error, "sqlstate", None),
                                          getattr(driver_error, "pgcode", None)):
            raise
        raise PermissionDenied(f"{table}: this database login may not {what}; run `sprongus {command}` as a "
                               "maintenance login (a member of sprongus_maintenance)") from None


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(id=row.id, token_hash=row.token_hash, subject=row.subject,
                    permissions=frozenset(Permission(s) for s in _split(row.scopes)), projects=_split(row.projects),
                    created_at=row.created_at, expires_at=row.expires_at, auth_time=row.auth_time,
                    revoked_at=row.revoked_at, kind=TokenKind(row.kind), trust=row.trust,
                    key_prefix=row.key_prefix or "")


class PeeweeRevealTokenStore:
    def __init__(self, models: BoundModels) -> None:
        self._m = models.reveal_token
        self._db = models.db

    def add(self, token_hash: str, grant: RevealGrant) -> None:
        with storage_errors(), self._db.atomic():
            self._m.insert(token_hash=token_hash, subject=grant.subject, projects=",".join(sorted(grant.projects)),
                           admin=grant.admin, owner_type=grant.owner_type, owner_id=grant.owner_id,
                           key_name=grant.key_name, expires_at=grant.expires_at, seal=grant.seal).execute()
            # Expired tokens can never be redeemed: drop them as new ones arrive, so the table stays small.
            self._m.delete().where(self._m.expires_at < grant.expires_at - _MAX_REVEAL_TTL).execute()

    def consume(self, token_hash: str, now: datetime) -> RevealGrant | None:
        """Read and delete in one transaction: of two concurrent redeems only one deletes the row."""
        m = self._m
        with storage_errors(), dialect_of(self._db).write_transaction(self._db):
            row = m.get_or_none(m.token_hash == token_hash)
            if row is None or m.delete().where(m.token_hash == token_hash).execute() != 1:
                return None
        if row.expires_at <= now:
            return None
        return RevealGrant(row.subject, _split(row.projects), bool(row.admin), row.owner_type, row.owner_id,
                           row.key_name, row.expires_at, row.seal)


class PeeweeIdempotencyStore:
    def __init__(self, models: BoundModels) -> None:
        self._m = models.idempotency
        self._db = models.db

    def begin(self, subject: str, key: str, fingerprint: str, now: datetime) -> IdempotencyRecord | None:
        m = self._m
        where = (m.subject == subject) & (m.key == key)
        with storage_errors(), dialect_of(self._db).write_transaction(self._db):
            m.delete().where((m.subject == subject) & (m.created_at < now - IDEMPOTENCY_TTL)).execute()  # 24 h
            try:
                with self._db.atomic():  # a savepoint: the duplicate must not abort the outer transaction
                    m.insert(subject=subject, key=key, fingerprint=fingerprint, created_at=now).execute()
                return None
            except peewee.IntegrityError:
                pass
            row = m.get(where)
            if now - row.created_at >= IDEMPOTENCY_TTL:  # expired: the key is free again
                m.update(fingerprint=fingerprint, created_at=now, status=None, body=None, headers=None).where(
                    where & (m.created_at == row.created_at)).execute()
                return None
            response = None if row.status is None else StoredResponse(row.status, row.body or "",
                                                                      json.loads(row.headers or "{}"))
            return IdempotencyRecord(row.fingerprint, response)

    def finish(self, subject: str, key: str, response: StoredResponse) -> None:
        m = self._m
        with storage_errors(), self._db.atomic():
            m.update(status=response.status, body=response.body, headers=json.dumps(response.headers)).where(
                (m.subject == subject) & (m.key == key)).execute()

    def abandon(self, subject: str, key: str) -> None:
        m = self._m
        with storage_errors(), self._db.atomic():
            m.delete().where((m.subject == subject) & (m.key == key) & m.status.is_null()).execute()
