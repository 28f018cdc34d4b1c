"""Batch reveal: up to 1,000 plaintexts of one scope in one call, for `secrets run`, `export --reveal` and services
that read their configuration at start-up.

One call is one reveal as far as authorization and rate limits go (`reveal_batch`), but every secret it reveals
gets its own audit row (the same request id, `batch: true`). Those rows are written all or none, after every value
opened and before any is returned: an audit store that cannot take the whole batch reveals nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sprongus.domain.errors import IntegrityError, NotFound, ValidationError
from sprongus.domain.names import validate_key_name, validate_prefix
from sprongus.domain.principal import Permission, Principal, authorize
from sprongus.domain.records import AuditAction, Outcome, SecretRecord
from sprongus.domain.reports import BatchReveal, RevealedSecret
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import SecretRepository
from sprongus.ports.secrets_api import SecretsApi
from sprongus.service.deps import ServiceDeps

MAX_BATCH = 1000
KEYS_RULE = f"a list of at most {MAX_BATCH} key names"
TOO_MANY_RULE = f"matches more than {MAX_BATCH} secrets; give a longer prefix or name the keys"
EITHER_RULE = "give either keys or a prefix, not both"


class BatchRevealOps:
    def __init__(self, deps: ServiceDeps) -> None:
        self._d = deps

    def check(self, principal: Principal, scope: Scope, prefix: str | None = None,
              keys: list[str] | None = None) -> None:
        """The checks `reveal_many` makes first, for the API to make before its step-up check."""
        with self._d.auditor.failures(principal, AuditAction.REVEAL, scope, batch=True):
            _admit(prefix, keys)
            authorize(principal, scope, Permission.REVEAL)

    def reveal_many(self, principal: Principal, scope: Scope, prefix: str | None = None,
                    keys: list[str] | None = None) -> BatchReveal:
        """The secrets named by `keys`, or under `prefix` (neither: the whole scope, as prefix ""), by key name.

        `missing` lists the requested keys that revealed nothing, absent and outside the caller's key prefix alike
        (a prefix request has none: it asks for what exists). Duplicated keys count once. More than 1,000 keys,
        or a prefix matching more than 1,000 secrets, is refused before anything is opened.
        """
        with self._d.auditor.failures(principal, AuditAction.REVEAL, scope, batch=True):
            prefix, wanted = _admit(prefix, keys)
            authorize(principal, scope, Permission.REVEAL)
            self._d.throttle.principal(principal, "reveal_batch")  # once per call, whatever its size
            with self._d.uow.transaction(principal, readonly=True) as repo:
                records = self._read(repo, principal, scope, prefix, wanted)
            records.sort(key=_key_of)  # by key name in Python: a database collation may order names otherwise
            if any(r.defect for r in records):  # a row that does not decode fails the batch, as a single reveal
                raise IntegrityError()
            values = self._d.pool.map(self._d.sealer.open, records)  # each a data-key unwrap: a KMS call
            found = {r.key for r in records}
            missing = [k for k in wanted or () if k not in found]
            entries: list[tuple[str, int | None, Outcome]] = [(r.key, r.version, Outcome.SUCCESS) for r in records]
            # Keys that revealed nothing are audited too: absent ones as not found, hidden ones (outside the key
            # prefix) as denied, which is what a single reveal of each would have recorded.
            entries += [(k, None, Outcome.NOT_FOUND if principal.can_see_key(k) else Outcome.DENIED)
                        for k in missing]
            self._d.auditor.record_many(principal, AuditAction.REVEAL, scope, entries, batch=True)
            return BatchReveal([RevealedSecret(r.key, v, r.version) for r, v in zip(records, values, strict=True)],
                               missing)

    @staticmethod
    def _read(repo: SecretRepository, principal: Principal, scope: Scope, prefix: str,
              wanted: list[str] | None) -> list[SecretRecord]:
        if wanted is not None:
            return repo.get_many(scope, [k for k in wanted if principal.can_see_key(k)])
        visible = principal.narrow(prefix)
        if visible is None:  # the caller's key prefix and this one share no key
            return []
        rows = repo.list_page(scope, visible, None, MAX_BATCH + 1)
        if len(rows) > MAX_BATCH:
            raise ValidationError("prefix", TOO_MANY_RULE)
        return rows


def _admit(prefix: object, keys: object) -> tuple[str, list[str] | None]:
    """(prefix, sorted distinct keys or None). The rules name the field and the item, never a key."""
    if prefix is not None and keys is not None:
        raise ValidationError("keys", EITHER_RULE)
    if keys is None:
        return validate_prefix(prefix), None
    if not isinstance(keys, list) or len(keys) > MAX_BATCH:
        raise ValidationError("keys", KEYS_RULE)
    for i, key in enumerate(keys):
        validate_key_name(key, f"keys[{i}]")
    return "", sorted(set(keys))


def _key_of(record: SecretRecord) -> str:
    return record.key


def reveal_keys(api: SecretsApi, scope: Scope, keys: Iterable[str]) -> dict[str, SecretValue]:
    """key -> value for every key, through any SecretsApi, with one `reveal_many` per 1,000 keys.

    The keys come from a listing made just before: one that is missing now was deleted (or moved out of reach)
    since, and the caller gets NotFound naming it rather than a result without it.
    """
    names = sorted(set(keys))
    values: dict[str, SecretValue] = {}
    for start in range(0, len(names), MAX_BATCH):
        batch = api.reveal_many(scope, keys=names[start:start + MAX_BATCH])
        if batch.missing:
            raise NotFound(f"secret {batch.missing[0]} not found in {scope}")
        values.update((item.key, item.value) for item in batch.items)
    return values
