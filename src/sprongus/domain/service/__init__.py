"""SecretsService: the one entry to every use case. Pure domain: it talks to ports only."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sprongus.domain.principal import Principal
from sprongus.domain.records import SecretView
from sprongus.domain.scope import Scope
from sprongus.domain.service.core import Page, SecretOps, SetResult
from sprongus.domain.service.deps import Progress, ServiceDeps
from sprongus.domain.service.reveal_tokens import RevealTokenOps
from sprongus.domain.service.rotation import RotationOps, RotationReport, VerifyReport
from sprongus.domain.service.transfer import ExportResult, ImportItem, ImportReport, TransferOps, parse_items
from sprongus.domain.values import SecretValue

__all__ = ["ExportResult", "ImportItem", "ImportReport", "Page", "RotationReport", "SecretsService",
           "ServiceDeps", "SetResult", "VerifyReport", "parse_items"]


class SecretsService:
    def __init__(self, deps: ServiceDeps) -> None:
        self.deps = deps
        self._ops = SecretOps(deps)
        self._transfer = TransferOps(deps)
        self._rotation = RotationOps(deps)
        self._reveal_tokens = RevealTokenOps(deps, deps.reveal_tokens)

    def set(self, principal: Principal, scope: Scope, key: str, value: SecretValue, meta: object = None,
            expected_version: int | None = None) -> SetResult:
        return self._ops.set(principal, scope, key, value, meta, expected_version)

    def get(self, principal: Principal, scope: Scope, key: str, reveal: bool = False) -> SecretView:
        return self._ops.get(principal, scope, key, reveal)

    def unset(self, principal: Principal, scope: Scope, key: str) -> None:
        self._ops.unset(principal, scope, key)

    def list(self, principal: Principal, scope: Scope, prefix: str = "", with_meta: bool = False,
             cursor: str | None = None, limit: int = 50) -> Page:
        return self._ops.list(principal, scope, prefix, with_meta, cursor, limit)

    def import_(self, principal: Principal, items: builtins.list[ImportItem] | None = None,
                bundle: dict[str, Any] | None = None, mode: str = "merge", allow_plaintext: bool = False,
                passphrase: SecretValue | None = None, prefix: str = "", dry_run: bool = False,
                progress: Progress | None = None) -> ImportReport:
        return self._transfer.import_(principal, items, bundle, mode, allow_plaintext, passphrase, prefix,
                                      dry_run, progress)

    def export(self, principal: Principal, scope: Scope, prefix: str = "", bundle: bool = False,
               passphrase: SecretValue | None = None, progress: Progress | None = None) -> ExportResult:
        return self._transfer.export(principal, scope, prefix, bundle, passphrase, progress)

    def rotate(self, principal: Principal, scope: Scope, key: str | None = None, prefix: str = "",
               rotated_before: datetime | None = None, progress: Progress | None = None) -> RotationReport:
        return self._rotation.rotate(principal, scope, key, prefix, rotated_before, progress)

    def check_master_key(self, principal: Principal) -> None:
        self._rotation.check_master_key(principal)

    def rotate_master(self, principal: Principal, progress: Progress | None = None) -> RotationReport:
        return self._rotation.rotate_master(principal, progress)

    def verify(self, principal: Principal, progress: Progress | None = None) -> VerifyReport:
        return self._rotation.verify(principal, progress)

    def mint_reveal_token(self, principal: Principal, scope: Scope, key: str, ttl_seconds: int) -> tuple[str, str]:
        return self._reveal_tokens.mint(principal, scope, key, ttl_seconds)

    def redeem(self, token: object, client_address: str | None, request_id: str | None = None) -> SecretView:
        return self._reveal_tokens.redeem(token, client_address, request_id)
