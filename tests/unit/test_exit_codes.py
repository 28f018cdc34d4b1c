"""The one exit-code table (entrypoints/cli/errors.py): every domain error class has a code, and an outage of a
dependency (database, key provider, audit store, rate-limit store, the API, a full disk) is 8 "try again", never 7
"the data is bad" nor 1 "unexpected"."""

from __future__ import annotations

import errno

import click
import pytest
from click.testing import CliRunner

from sprongus.adapters.problem_types import error_from_problem, problem_type_of
from sprongus.domain import errors as e
from sprongus.domain import principal  # noqa: F401  (ScopeHidden: every subclass must be loaded to be listed)
from sprongus.entrypoints.api.problems import from_domain_error
from sprongus.entrypoints.cli.errors import EXIT_CODES, EXIT_UNAVAILABLE, GuardedGroup, exit_code_for

EXPECTED = {
    "SprongusError": 1, "StorageError": 1,
    "ValidationError": 2, "ConfigError": 2,
    "NotFound": 3, "ScopeHidden": 3, "Gone": 3,
    "PermissionDenied": 4, "ConfirmationRequired": 4, "Unauthenticated": 4, "StepUpRequired": 4,
    "RepeatedRefusal": 4,
    "InvalidTokenRequest": 2, "UnsupportedGrantType": 2, "InvalidGrant": 4,
    "Conflict": 5, "ReplayOutdated": 5, "PreconditionFailed": 5,
    "RateLimited": 6,
    "IntegrityError": 7, "VaultKeyMismatch": 7, "KeyProviderError": 7, "KeyAccessDenied": 2, "KeyDisabled": 7,
    "Unavailable": 8, "KeyProviderUnavailable": 8, "AuditUnavailable": 8, "StorageUnavailable": 8,
    "RateLimitStoreUnavailable": 8, "MasterKeyChanged": 8, "RemoteUnavailable": 8,
}


def error_classes() -> list[type[e.SprongusError]]:
    """The domain's error tree (an entrypoint's own subclass, such as the API's, is listed only once imported)."""
    found, todo = [], [e.SprongusError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("sprongus.domain."):
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def bare(cls: type[e.SprongusError]) -> e.SprongusError:
    """An instance for isinstance checks only: the constructors take different arguments."""
    return cls.__new__(cls)


def test_every_domain_error_class_has_its_code() -> None:
    classes = {cls.__name__: cls for cls in error_classes()}

    assert set(classes) == set(EXPECTED), "a new error class needs its exit code decided here and in docs/cli.md"
    assert {name: exit_code_for(bare(cls)) for name, cls in classes.items()} == EXPECTED


def test_every_class_but_the_base_has_a_row_and_no_row_is_shadowed() -> None:
    for cls in error_classes():
        if cls is not e.SprongusError:
            assert any(issubclass(cls, kind) for kind, _ in EXIT_CODES), cls
    for i, (kind, _) in enumerate(EXIT_CODES):  # most specific first: a row under its own parent never applies
        assert not any(issubclass(kind, earlier) for earlier, _ in EXIT_CODES[:i]), kind


def test_every_outage_is_8_and_answers_503_and_a_remote_command_exits_8_too() -> None:
    outages = [cls for cls in error_classes() if issubclass(cls, e.Unavailable)]
    assert {cls.__name__ for cls in outages} == {
        "Unavailable", "KeyProviderUnavailable", "AuditUnavailable", "StorageUnavailable", "RateLimitStoreUnavailable",
        "MasterKeyChanged", "RemoteUnavailable"}
    for cls in outages:
        assert exit_code_for(bare(cls)) == EXIT_UNAVAILABLE
        if cls is e.RemoteUnavailable:
            continue  # the client's own error: the API never raises it
        error = cls("the dependency is down")
        response = from_domain_error(error)
        assert (response.status_code, response.mimetype) == (503, "application/problem+json"), cls
        back = error_from_problem(503, response.get_json(), {})
        assert exit_code_for(back) == EXIT_UNAVAILABLE, (cls, back)


@pytest.mark.parametrize(("error", "kind"), [
    (e.KeyProviderUnavailable("Cloud KMS Decrypt failed: unreachable"), "key-provider-unavailable"),
    (e.AuditUnavailable("audit event could not be recorded (no space left on device); action refused"),
     "audit-unavailable"),
    (e.StorageUnavailable(e.DISK_FULL), "storage-unavailable"),
    (e.RateLimitStoreUnavailable("rate-limit storage unavailable: ConnectionError"), "storage-unavailable"),
    (e.StorageError("database error: file is not a database"), "storage-unavailable"),  # 503 as it always was
])
def test_the_api_names_each_outage_by_its_problem_type(error: e.SprongusError, kind: str) -> None:
    row = problem_type_of(error)
    assert (row.status, row.kind) == (503, kind)


def test_a_corrupt_database_file_is_not_an_outage_and_a_disabled_key_is_not_one_either() -> None:
    assert exit_code_for(e.StorageError("database error: file is not a database")) == 1
    assert exit_code_for(e.KeyDisabled("the key version is destroyed")) == 7


def _group(raised: BaseException) -> click.Group:
    @click.group(cls=GuardedGroup)
    def root() -> None:
        pass

    @root.command("go")
    def go() -> None:
        raise raised

    return root


def test_a_full_disk_under_any_file_write_is_one_line_and_exit_8() -> None:
    result = CliRunner().invoke(_group(OSError(errno.ENOSPC, "No space left on device", "/x/master.key")), ["go"])

    assert result.exit_code == 8
    assert result.stderr == "error: no space left on device\n"


def test_another_os_error_stays_unexpected() -> None:
    result = CliRunner().invoke(_group(OSError(errno.EIO, "Input/output error")), ["go"])

    assert result.exit_code == 1
    assert result.stderr == "error: unexpected OSError; set SPRONGUS_DEBUG=1 for details\n"
