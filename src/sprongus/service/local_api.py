"""SecretsApi on this machine's vault: the use cases, called as one fixed principal (the local owner)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sprongus.service.secrets import DEFAULT_PAGE

if TYPE_CHECKING:
    from datetime import datetime

    from sprongus.domain.history import History
    from sprongus.domain.import_item import ImportItem
    from sprongus.domain.principal import Principal
    from sprongus.domain.records import Page, SecretView, SetResult
    from sprongus.domain.reports import BatchReveal, ExportResult, ImportReport, RotationReport
    from sprongus.domain.scope import Scope
    from sprongus.domain.values import SecretValue
    from sprongus.ports.progress import Progress
    from sprongus.service.batch_reveal import BatchRevealOps
    from sprongus.service.history import HistoryOps
    from sprongus.service.rotation import RotationOps
    from sprongus.service.secrets import SecretOps
    from sprongus.service.transfer import TransferOps


class LocalSecretsApi:
    """Each use case comes as a zero-argument callable (the container's provider): one command calls one or two of
    them, and a use case's modules load only when it is first asked for."""

    def __init__(self, principal: Principal, secrets: Callable[[], SecretOps], transfer: Callable[[], TransferOps],
                 rotation: Callable[[], RotationOps], batch_reveal: Callable[[], BatchRevealOps],
                 history: Callable[[], HistoryOps]) -> None:
        self.principal = principal
        self._history = history
        self._secrets = secrets
        self._transfer = transfer
        self._rotation = rotation
        self._batch_reveal = batch_reveal

    def set(self, scope: Scope, key: str, value: SecretValue, meta: object = None) -> SetResult:
        return self._secrets().set(self.principal, scope, key, value, meta)

    def get(self, scope: Scope, key: str, reveal: bool = False, version: int | None = None) -> SecretView:
        return self._secrets().get(self.principal, scope, key, reveal, version)

    def unset(self, scope: Scope, key: str) -> None:
        self._secrets().unset(self.principal, scope, key)

    def history(self, scope: Scope, key: str) -> History:
        return self._history().history(self.principal, scope, key)

    def rollback(self, scope: Scope, key: str, to: int) -> SetResult:
        return self._history().rollback(self.principal, scope, key, to)

    def restore(self, scope: Scope, key: str) -> SecretView:
        return self._history().restore(self.principal, scope, key)

    def purge(self, scope: Scope, key: str) -> builtins.list[int]:
        return self._history().purge(self.principal, scope, key)

    def reveal_many(self, scope: Scope, prefix: str | None = None,
                    keys: builtins.list[str] | None = None) -> BatchReveal:
        return self._batch_reveal().reveal_many(self.principal, scope, prefix, keys)

    def list(self, scope: Scope, prefix: str = "", with_meta: bool = False, cursor: str | None = None,
             limit: int = DEFAULT_PAGE, deleted: bool = False) -> Page:
        return self._secrets().list(self.principal, scope, prefix, with_meta, cursor, limit, deleted)

    def import_(self, items: builtins.list[ImportItem] | None = None, bundle: dict[str, Any] | None = None,
                mode: str = "merge", allow_plaintext: bool = False, passphrase: SecretValue | None = None,
                prefix: str = "", dry_run: bool = False, progress: Progress | None = None) -> ImportReport:
        return self._transfer().import_(self.principal, items, bundle, mode, allow_plaintext, passphrase, prefix,
                                      dry_run, progress)

    def export(self, scope: Scope, prefix: str = "", bundle: bool = False, passphrase: SecretValue | None = None,
               progress: Progress | None = None, all_versions: bool = False) -> ExportResult:
        return self._transfer().export(self.principal, scope, prefix, bundle, passphrase, progress, all_versions)

    def rotate(self, scope: Scope, key: str | None = None, prefix: str = "", rotated_before: datetime | None = None,
               progress: Progress | None = None) -> RotationReport:
        return self._rotation().rotate(self.principal, scope, key, prefix, rotated_before, progress)
