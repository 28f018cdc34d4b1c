"""`verify` during a key-provider outage: a secret that could not be checked is not a finding. The run stops at the
first outage with KeyProviderUnavailable (CLI exit 8), instead of reporting every row as "master key unavailable"
(exit 7, "PROBLEMS FOUND", as if the vault had been tampered with)."""

from __future__ import annotations

import pytest

from sprongus.domain.errors import KeyDisabled, KeyProviderUnavailable
from sprongus.domain.records import AuditAction, Outcome
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.ports import MasterKeyProvider, WrappedKey
from tests.harness import Harness, make_harness, owner

SCOPE = Scope.project("p1")


class FlakyKms:
    """Delegates to the real provider until `down` is set; then every unwrap fails as `failure` says."""

    def __init__(self, inner: MasterKeyProvider) -> None:
        self.inner = inner
        self.failure: Exception | None = None
        self.unwraps = 0

    def current_key_id(self) -> str:
        return self.inner.current_key_id()

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        return self.inner.wrap(dek, aad)

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        self.unwraps += 1
        if self.failure is not None:
            raise self.failure
        return self.inner.unwrap(wrapped, key_id, aad)

    def can_unwrap(self, key_id: str) -> bool:
        return self.inner.can_unwrap(key_id)


def flaky_harness() -> tuple[FlakyKms, Harness]:
    box: list[FlakyKms] = []

    def wrap(inner: MasterKeyProvider) -> MasterKeyProvider:
        box.append(FlakyKms(inner))
        return box[0]

    h = make_harness(wrap_keys=wrap)
    for key in ("a", "b", "c"):
        h.secrets.set(owner(), SCOPE, key, SecretValue(f"value-{key}"))
    return box[0], h


def test_an_outage_stops_verify_after_the_first_row_and_reports_no_finding() -> None:
    kms, h = flaky_harness()
    kms.failure = KeyProviderUnavailable("Cloud KMS Decrypt failed: unreachable")
    kms.unwraps = 0

    with pytest.raises(KeyProviderUnavailable):
        h.rotation.verify(owner())

    assert kms.unwraps == 1  # aborted at the first outage: not one slow timeout per row
    failed = [ev for ev in h.audit.events if ev.action is AuditAction.VERIFY]
    assert [ev.outcome for ev in failed] == [Outcome.ERROR]  # the failed attempt is audited, as any failure

    kms.failure = None  # the KMS is back: the same vault verifies clean
    report = h.rotation.verify(owner())
    assert (report.checked, report.failures, report.ok) == (3, [], True)


def test_a_disabled_key_is_still_a_finding_about_the_data() -> None:
    kms, h = flaky_harness()
    kms.failure = KeyDisabled("the key version is destroyed")

    report = h.rotation.verify(owner())

    assert sorted(report.failures) == [(str(SCOPE), key, "master key unavailable") for key in ("a", "b", "c")]
