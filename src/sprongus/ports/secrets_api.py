from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any, Protocol

from sprongus.domain.import_item import ImportItem
from sprongus.domain.records import SecretView
from sprongus.domain.results import BatchReveal, ExportResult, ImportReport, Page, RotationReport, SetResult
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports.progress import Progress


class SecretsApi(Protocol):
    """The secrets operations the CLI calls, as one caller: the local vault's owner, or an API token's subject.

    Implemented by the local use cases (service/local_api.py) and by the HTTP client (adapters/http_client.py),
    so every `sprongus secrets` command behaves the same with and without --remote. Raises the domain's errors.
    """

    def set(self, scope: Scope, key: str, value: SecretValue, meta: object = None) -> SetResult: ...

    def get(self, scope: Scope, key: str, reveal: bool = False) -> SecretView: ...

    def unset(self, scope: Scope, key: str) -> None: ...

    def reveal_many(self, scope: Scope, prefix: str | None = None,
                    keys: builtins.list[str] | None = None) -> BatchReveal:
        """Up to 1,000 plaintexts of one scope in one call: the keys named, or those under a prefix (neither: the
        whole scope). One reveal as far as rate limits go; one audit row per secret revealed."""
        ...

    def list(self, scope: Scope, prefix: str = "", with_meta: bool = False, cursor: str | None = None,
             limit: int = 50) -> Page: ...

    def import_(self, items: builtins.list[ImportItem] | None = None, bundle: dict[str, Any] | None = None,
                mode: str = "merge", allow_plaintext: bool = False, passphrase: SecretValue | None = None,
                prefix: str = "", dry_run: bool = False, progress: Progress | None = None) -> ImportReport: ...

    def export(self, scope: Scope, prefix: str = "", bundle: bool = False, passphrase: SecretValue | None = None,
               progress: Progress | None = None) -> ExportResult: ...

    def rotate(self, scope: Scope, key: str | None = None, prefix: str = "", rotated_before: datetime | None = None,
               progress: Progress | None = None) -> RotationReport: ...
