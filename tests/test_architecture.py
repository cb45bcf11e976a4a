"""The rules of docs/architecture.md, checked on the real import graph (grimp, import-linter's engine).

Every import counts, including those under `if TYPE_CHECKING:`: a cycle that only the type
checker sees is still two modules that cannot be understood apart.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
from functools import cache
from pathlib import Path

import grimp
import pytest

PACKAGE = "crm_events"
LAYERS = {  # higher may import lower, never the reverse
    "core": 0,
    "config": 1, "exceptions": 1, "metrics": 1,
    "responses": 2, "apps": 2, "redis_clients": 2, "channel_layer": 2, "registry": 2,
    "kafka": 3,
    "ingest": 4, "fanout": 4, "access": 4,
    "streams": 5, "ops": 5,
    "server": 6, "management": 6,
    # Django's own: the models module re-exports access's grant store; the admin and migrations use it.
    "models": 5, "admin": 5, "migrations": 5,
}
WEB = ("fanout", "streams", "access", "ops", "server")
FRAMEWORKS = ("django", "aiokafka", "redis", "channels", "channels_redis", "twisted", "daphne", "asgiref",
              "whitenoise", "prometheus_client", "jwt")
SERVER_ONLY = ("daphne", "twisted", "asgiref", "whitenoise")


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, include_external_packages=True)


def part(module: str) -> str:
    """`crm_events.fanout.hub` -> `fanout`; `crm_events.config` -> `config`."""
    return module.split(".")[1] if module.count(".") else ""


def own_modules() -> list[str]:
    return sorted(m for m in graph().modules if m.startswith(PACKAGE + "."))


def imports_of(module: str) -> set[str]:
    return graph().find_modules_directly_imported_by(module)


def test_every_package_and_foundation_module_has_a_layer():
    assert {part(m) for m in own_modules()} <= set(LAYERS)


@pytest.mark.parametrize("module", own_modules())
def test_imports_go_down_the_layers_never_up(module):
    upward = [
        imported for imported in imports_of(module)
        if imported.startswith(PACKAGE + ".") and part(imported) != part(module)
        and LAYERS[part(imported)] >= LAYERS[part(module)]
    ]
    assert upward == [], f"{module} imports a layer at or above its own"


def test_no_module_cycles():
    g = graph()
    cycles = []
    for module in own_modules():
        for imported in imports_of(module):
            if imported.startswith(PACKAGE + ".") and g.find_shortest_chain(imported, module):
                cycles.append((module, imported))
    assert cycles == []


def test_no_package_cycles():
    g = graph()
    packages = sorted({part(m) for m in own_modules()})
    both_ways = [
        (a, b) for a, b in itertools.combinations(packages, 2)
        if g.chain_exists(importer=f"{PACKAGE}.{a}", imported=f"{PACKAGE}.{b}", as_packages=True)
        and g.chain_exists(importer=f"{PACKAGE}.{b}", imported=f"{PACKAGE}.{a}", as_packages=True)
    ]
    assert both_ways == []


def test_the_core_is_pure():
    for module in own_modules():
        if part(module) == "core":
            outside = {m for m in imports_of(module) if m.split(".")[0] in FRAMEWORKS}
            ours = {m for m in imports_of(module) if m.startswith(PACKAGE + ".") and part(m) != "core"}
            assert outside | ours == set(), module


def test_the_web_process_never_imports_the_consumer_side():
    g = graph()
    for web in WEB:
        chain = g.chain_exists(importer=f"{PACKAGE}.{web}", imported=f"{PACKAGE}.ingest", as_packages=True)
        assert not chain, web


def test_only_the_server_package_knows_daphne_twisted_asgiref_and_whitenoise():
    for module in own_modules():
        if part(module) != "server":
            known = {m for m in imports_of(module) if m.split(".")[0] in SERVER_ONLY}
            assert known == set(), module


# --- tests use what modules publish ----------------------------------------------------------

OURS = ("crm_events", "aetherlink", "scripts", "bench", "tests")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(path: Path) -> list[str]:
    """`from <ours> import _x`, and `<module of ours>._x`, in one test file."""
    tree = ast.parse(path.read_text(), str(path))
    modules: set[str] = set()  # local names bound to modules of ours
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(OURS):
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
                elif _is_package(node.module) and importlib.util.find_spec(f"{node.module}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {alias.asname for alias in node.names if alias.asname and alias.name.startswith(OURS)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and _is_private(node.attr)):
            found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def _is_package(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.submodule_search_locations is not None


def test_no_test_reaches_into_a_private_name_of_another_module():
    tests = Path(__file__).parent
    found = [use for path in sorted(tests.rglob("*.py")) for use in _private_uses(path)]
    assert not found, "\n".join(found)
