"""An import's versions sealed before its write transaction, where that transaction holds the whole store.

On SQLite with a KMS (seal_ahead.py: where the container turns sealing ahead on) every new version's data key is a
KMS round trip. An import sealed them all inside its one write transaction, so every other write and every reveal's
audit row waited for all of them: 2,000 secrets in bulk at 20 ms a call, 16 at a time, held the store ~2.5 s, past
a reveal's busy timeout in a larger import. Here the versions are planned from a read, sealed (in bulk, in the
pool), and the transaction then plans again: a secret whose plan came out the same (scope, key, version numbers,
meta, value and author) takes its sealed versions, under the key this process still uses; one whose plan another
write changed meanwhile (or every one, if the process moved to another master key) is sealed again inside, as
before. The id and times come from the transaction, as without sealing early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from sprongus.domain.errors import IntegrityError
from sprongus.service.import_plan import batches

if TYPE_CHECKING:
    from sprongus.domain.import_item import SealJob
    from sprongus.domain.principal import Principal
    from sprongus.domain.records import SecretRecord
    from sprongus.domain.scope import Scope
    from sprongus.ports import SecretRepository
    from sprongus.ports.progress import Progress
    from sprongus.service.deps import ServiceDeps
    from sprongus.service.import_plan import Incoming

Place = tuple["Scope", str]
# A secret's planned jobs (what the transaction compares) and the versions sealed for them.
SealedEarly = dict[Place, tuple[list["SealJob"], list["SecretRecord"]]]
Sealed = dict[Place, list["SecretRecord"]]  # each secret's new versions, in order
Plan = Callable[["SecretRepository", "Incoming", "SecretRecord | None"], list["SealJob"]]


def seal_before(deps: ServiceDeps, principal: Principal, secrets: list[Incoming], plan: Plan,
                progress: Progress | None) -> SealedEarly:
    """Every secret's versions planned from one read and sealed, outside any write transaction."""
    planned: dict[Place, list[SealJob]] = {}
    with deps.uow.transaction(principal, readonly=True) as repo:
        for secret in secrets:
            try:
                planned[secret.place] = plan(repo, secret, repo.get_any(*secret.place))
            except IntegrityError:
                return {}  # a damaged current row: the transaction refuses the import, so seal nothing for it
    sealed: SealedEarly = {}
    done, total = 0, sum(len(s.items) for s in secrets)
    for batch in batches(secrets, deps.batch_size):
        for place, records in _sealed(deps, planned, [s.place for s in batch]).items():
            sealed[place] = (planned[place], records)
        done += sum(len(s.items) for s in batch)
        if progress:
            progress(done, total)
    return sealed


def sealed_now(deps: ServiceDeps, planned: dict[Place, list[SealJob]], early: SealedEarly) -> Sealed:
    """Inside the transaction: each secret's versions, sealed early if its plan is unchanged, else sealed now.
    Early ones are stamped with the transaction's time, as if sealed in it (`_store` then carries a kept secret's
    id and creation time over, as for any new version)."""
    ready: Sealed = {}
    again: list[Place] = []
    now = deps.clock.now()
    for place, jobs in planned.items():
        got = early.get(place)
        if got is not None and got[0] == jobs and deps.sealer.usable_early([r.master_key_id for r in got[1]]):
            ready[place] = [replace(record, updated_at=now, created_at=now) for record in got[1]]
        else:
            again.append(place)
    if again:
        ready.update(_sealed(deps, planned, again))
    return ready


def _sealed(deps: ServiceDeps, planned: dict[Place, list[SealJob]], places: list[Place]) -> Sealed:
    """The planned versions of `places`, sealed in one bulk call (the KMS calls in the pool), per place in order."""
    records = iter(deps.sealer.seal_many([job for place in places for job in planned[place]], deps.pool.map))
    return {place: [next(records) for _ in planned[place]] for place in places}
