"""The floors hold: domain and ports -> service -> adapters -> entrypoints, no import circles, small files.

Imports are read from the source (every `import`, at module level, in functions and under TYPE_CHECKING alike),
so a lazy import cannot hide an arrow. Importing `a.b.c` also runs the package `a.b`'s `__init__`, so that counts
as an arrow too: it is how `domain.records -> domain.envelope -> ports.crypto -> ports/__init__ -> ports.audit ->
domain.records` would break the CLI at start-up while every test that imports in another order passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sprongus"
# `client` (sprongus.client, the applications' Python client) is an entrypoint like the CLI and the API.
FLOORS = {"domain": 0, "ports": 0, "service": 1, "adapters": 2, "entrypoints": 3, "client": 3}
INNER_FORBIDDEN = ("flask", "flask_smorest", "marshmallow", "werkzeug", "peewee", "playhouse", "click", "keyring",
                   "cryptography", "google", "azure", "boto3", "botocore", "hvac", "dependency_injector", "psycopg",
                   "redis", "limits", "requests", "gunicorn", "dotenv", "platformdirs", "filelock", "jwt")
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = ["sprongus", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in SRC.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Every module name this file imports (`from x import y` counts y when y is a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
    return names


def _arrows(module: str) -> set[str]:
    """The project modules that importing `module`'s imports runs, parent packages included."""
    own_ancestors = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}
    arrows: set[str] = set()
    for name in _imports(MODULES[module]):
        parts = name.split(".")
        for end in range(2, len(parts) + 1):  # sprongus.x, sprongus.x.y, ... (the root package is empty)
            target = ".".join(parts[:end])
            if target in MODULES and target not in own_ancestors:
                arrows.add(target)
    return arrows


GRAPH = {module: _arrows(module) for module in MODULES}


def _floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def test_the_graph_is_real() -> None:
    assert "sprongus.service.secrets" in GRAPH["sprongus.entrypoints.container"]
    assert "sprongus.ports" in GRAPH["sprongus.domain.envelope"]  # via sprongus.ports.crypto


def test_no_arrow_points_up_a_floor() -> None:
    upward = [f"{source} -> {target}" for source, targets in GRAPH.items() for target in targets
              if (_floor(source) is not None and _floor(target) is not None
                  and _floor(target) > _floor(source))]  # type: ignore[operator]
    assert upward == []


def test_domain_ports_and_service_import_no_framework_driver_or_sdk() -> None:
    found = [f"{module} imports {name}" for module, path in MODULES.items()
             if _floor(module) in (0, 1) for name in _imports(path) if name.split(".")[0] in INNER_FORBIDDEN]
    assert found == []


# The client runs inside other people's applications: it imports the product's inner floors and adapters only (no
# container, config reader or CLI), and none of the server's or the CLI's libraries; Flask only in its own helper.
CLIENT_MAY_IMPORT = ("sprongus.domain", "sprongus.ports", "sprongus.adapters", "sprongus.client")
CLIENT_FLASK_HELPER = "sprongus.client.flask"


def test_the_client_imports_inner_floors_and_adapters_and_no_server_or_cli_library() -> None:
    client = {module: path for module, path in MODULES.items() if module.startswith("sprongus.client")}
    assert CLIENT_FLASK_HELPER in client  # the check is looking at the package
    found = [f"{module} imports {name}" for module, path in client.items() for name in _imports(path)
             if (name.startswith("sprongus.") and not name.startswith(CLIENT_MAY_IMPORT))
             or (name.split(".")[0] in INNER_FORBIDDEN and not (module == CLIENT_FLASK_HELPER and name == "flask"))]
    assert found == []


def _cycle_from(start: str) -> list[str] | None:
    """A path start -> ... -> start, if there is one (depth-first search)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for target in sorted(GRAPH[node]):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_circle(module: str) -> None:
    assert _cycle_from(module) is None


def test_no_source_file_is_over_the_limit() -> None:
    long = {str(path.relative_to(SRC)): n for path in SRC.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_checks_can_fail() -> None:
    """Seeded faults: an upward arrow and a circle are found by the same code."""
    GRAPH["sprongus.domain.names"].add("sprongus.entrypoints.config")
    GRAPH["sprongus.domain.scope"].add("sprongus.domain.names")
    GRAPH["sprongus.domain.names"].add("sprongus.domain.scope")
    try:
        with pytest.raises(AssertionError):
            test_no_arrow_points_up_a_floor()
        assert _cycle_from("sprongus.domain.names") is not None
    finally:
        GRAPH["sprongus.domain.names"] = _arrows("sprongus.domain.names")
        GRAPH["sprongus.domain.scope"] = _arrows("sprongus.domain.scope")


def test_every_package_ships() -> None:
    """pyproject lists packages by hand: a new floor or subpackage missing there works editable but not installed."""
    import tomllib

    listed = set(tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {_module_name(init) for init in SRC.rglob("__init__.py")}
    assert on_disk - listed == set()
