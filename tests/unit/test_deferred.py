"""entrypoints/deferred.py: a provider's class is imported on the provider's first call, not before."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dependency_injector import providers

from sprongus.entrypoints.container import Container
from sprongus.entrypoints.deferred import Deferred

PROBE = "sprongus_deferred_probe"  # a module written for the test: in sys.modules only by the deferred call


@pytest.fixture
def probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / f"{PROBE}.py").write_text("class Thing:\n    def __init__(self, *args, **kwargs):\n"
                                          "        self.args, self.kwargs = args, kwargs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PROBE, raising=False)
    yield
    sys.modules.pop(PROBE, None)


@pytest.mark.usefixtures("probe_module")
def test_the_module_loads_on_the_first_call_with_the_arguments_passed_through() -> None:
    build = Deferred(f"{PROBE}:Thing")
    assert PROBE not in sys.modules
    thing = build(1, two=2)
    assert PROBE in sys.modules
    assert (thing.args, thing.kwargs) == ((1,), {"two": 2})
    assert type(build(3)) is type(thing)  # the same class every call


def test_a_wrong_path_fails_when_called_naming_the_module() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_use_case"):
        Deferred("sprongus.service.no_such_use_case:Nothing")()


def _deferred_providers() -> dict[str, Deferred]:
    return {name: provider.provides for name, provider in Container.providers.items()
            if isinstance(provider, providers.Singleton) and isinstance(provider.provides, Deferred)}


def test_every_deferred_provider_names_a_class_that_exists() -> None:
    """A typo in a "module:Class" string would otherwise fail only on that provider's first call in production."""
    deferred = _deferred_providers()
    assert {"history_ops", "transfer_ops", "rotation_ops", "batch_reveal_ops", "token_exchange"} <= set(deferred)
    for name, stand_in in deferred.items():
        cls = stand_in.resolve()
        assert isinstance(cls, type), name
        assert cls.__name__ == stand_in.path.rpartition(":")[2], name
