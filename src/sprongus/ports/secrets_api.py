from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any, Protocol

from sprongus.domain.history import History
from sprongus.domain.import_item import ImportItem
from sprongus.domain.records import Page, SecretView, SetResult
from sprongus.domain.reports import BatchReveal, ExportResult, ImportReport, RotationReport
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports.progress import Progress


class SecretsApi(Protocol):
    """The secrets operations the CLI calls, as one caller: the local vault's owner, or an API token's subject.

    Implemented by the local use cases (service/local_api.py) and by the HTTP client (adapters/http_client.py),
    so every `sprongus secrets` command behaves the same with and without --remote. Raises the domain's errors.
    """

    def set(self, scope: Scope, key: str, value: SecretValue, meta: object = None) -> SetResult: ...

    def get(self, scope: Scope, key: str, reveal: bool = False, version: int | None = None) -> SecretView:
        """The current version, or a kept one (`version`)."""
        ...

    def unset(self, scope: Scope, key: str) -> None:
        """Soft delete: every version is kept until `purge` or the retention runs out."""
        ...

    def history(self, scope: Scope, key: str) -> History: ...

    def rollback(self, scope: Scope, key: str, to: int) -> SetResult:
        """A new version holding version `to`'s value."""
        ...

    def restore(self, scope: Scope, key: str) -> SecretView: ...

    def purge(self, scope: Scope, key: str) -> builtins.list[int]:
        """Destroy the secret and every version now (needs admin too); the version numbers destroyed."""
        ...

    def reveal_many(self, scope: Scope, prefix: str | None = None,
                    keys: builtins.list[str] | None = None) -> BatchReveal:
        """Up to 1,000 plaintexts of one scope in one call: the keys named, or those under a prefix (neither: the
        whole scope). One reveal as far as rate limits go; one audit row per secret revealed."""
        ...

    def list(self, scope: Scope, prefix: str = "", with_meta: bool = False, cursor: str | None = None,
             limit: int = 50, deleted: bool = False) -> Page: ...

    def import_(self, items: builtins.list[ImportItem] | None = None, bundle: dict[str, Any] | None = None,
                mode: str = "merge", allow_plaintext: bool = False, passphrase: SecretValue | None = None,
                prefix: str = "", dry_run: bool = False, progress: Progress | None = None) -> ImportReport: ...

    def export(self, scope: Scope, prefix: str = "", bundle: bool = False, passphrase: SecretValue | None = None,
               progress: Progress | None = None, all_versions: bool = False) -> ExportResult:
        """Metadata or a bundle of the live secrets; `all_versions`: a bundle with every version they keep."""
        ...

    def rotate(self, scope: Scope, key: str | None = None, prefix: str = "", rotated_before: datetime | None = None,
               progress: Progress | None = None) -> RotationReport: ...
