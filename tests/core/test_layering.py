"""The shape holds by itself: no import cycle among appliance modules, and the core imports no feature.

Checked statically over the source (ast), so that a lazy import inside a function is caught too, and
dynamically in a fresh interpreter, so that nothing reaches a feature as a side effect of importing the core.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "appliance"
# The features are whatever the registry declares (plus the connectors library the sync feature uses);
# everything else under appliance/ is the core and must reach features only through the registry.
FEATURES = tuple(sorted({ep.name for ep in entry_points(group="appliance.features")} | {"connectors"}))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, modules: dict[str, Path], *, top_level_only: bool, type_checking: bool = True) -> set[str]:
    """appliance modules imported by a file: at module level only, or anywhere (lazy imports inside
    functions included); imports under `if TYPE_CHECKING:` count unless `type_checking` is False."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("appliance"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")
                    parent = parent[: len(parent) - (node.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                if not base.startswith("appliance"):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else base)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                if not top_level_only and type_checking:
                    visit(node.body)
                visit(node.orelse)
            elif top_level_only and isinstance(node, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []) or []:
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])
            elif not top_level_only:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        visit([child])
                    else:
                        visit([c for c in ast.walk(child) if isinstance(c, ast.stmt)])

    visit(tree.body)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, or None (iterative DFS with colours)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    for start in sorted(graph):
        if colour[start] != white:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        colour[start] = grey
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = black
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if nxt not in graph:
                continue
            if colour[nxt] == grey:
                return path[path.index(nxt):] + [nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def is_core(module: str) -> bool:
    parts = module.split(".")
    return len(parts) == 1 or parts[1] not in FEATURES


def feature_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "appliance" and len(parts) > 1 and parts[1] in FEATURES else None


def test_every_feature_package_is_registered() -> None:
    """A package under appliance/ with a manifest is a feature and must be in the registry (else the
    layering checks would treat it as core and let the core import it)."""
    manifests = {p.parent.name for p in PACKAGE.glob("*/manifest.py")}
    assert manifests and manifests <= set(FEATURES)


def test_find_cycle_finds_one() -> None:
    """The checker itself: a planted cycle is found, an acyclic graph passes."""
    cycle = find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycle is not None and set(cycle) == {"a", "b", "c"} and cycle[0] == cycle[-1]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle() -> None:
    """Imports among appliance modules form no cycle, counting lazy imports inside functions (a lazy import
    only hides a circle) but not annotations-only imports under TYPE_CHECKING."""
    modules = all_modules()
    graph = {
        name: imports(path, modules, top_level_only=False, type_checking=False) & set(modules)
        for name, path in modules.items()
    }
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_core_imports_no_feature() -> None:
    """No core module imports a feature package, not even lazily or for type checking."""
    modules = all_modules()
    offences = []
    for name, path in sorted(modules.items()):
        if not is_core(name):
            continue
        for target in sorted(imports(path, modules, top_level_only=False)):
            if feature_of(target):
                offences.append(f"{name} imports {target}")
    assert offences == []


def test_features_import_no_other_feature_by_accident() -> None:
    """Features may use the connectors library, and the identity feature's public helpers, but never
    another feature's internals at import time in a cycle: covered by the cycle check; here we pin that
    connectors (a library) imports no feature at all."""
    modules = all_modules()
    offences = []
    for name, path in sorted(modules.items()):
        if feature_of(name) != "connectors":
            continue
        for target in sorted(imports(path, modules, top_level_only=False)):
            owner = feature_of(target)
            if owner and owner != "connectors":
                offences.append(f"{name} imports {target}")
    assert offences == []


@pytest.mark.parametrize("module", ["appliance.config", "appliance.keys", "appliance.app", "appliance.web",
                                    "appliance.db", "appliance.bus", "appliance.core", "appliance.server",
                                    "appliance.observability"])
def test_importing_the_core_loads_no_feature(module: str) -> None:
    """In a fresh interpreter, importing a core module (and loading the config) imports no feature's code
    beyond its declaration (manifest and settings)."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = [m for m in json.loads(out.stdout) if feature_of(m)]
    assert loaded == []


def test_loading_config_reads_only_declarations() -> None:
    """Assembling the configuration imports each feature's manifest and settings, nothing more."""
    code = (
        "import json, sys\n"
        "from appliance.config import load_config\n"
        "load_config(None, env={}, cwd=__import__('pathlib').Path('/nonexistent'))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    loaded = [m for m in json.loads(out.stdout) if feature_of(m)]
    extra = [m for m in loaded if m.rpartition(".")[2] not in ("manifest", "settings") and m.count(".") > 1]
    assert loaded, "no feature declaration was loaded: is the package installed with its entry points?"
    assert extra == []


def test_moodle_is_reached_only_through_its_entry_point() -> None:
    """Moodle is packaged as a third-party connector would be: no appliance module outside its own package
    imports it (not even lazily); the registry finds it through `appliance.connectors` alone."""
    modules = all_modules()
    plugin = "appliance.connectors.moodle"
    offences = [
        f"{name} imports {target}"
        for name, path in sorted(modules.items())
        if name != plugin and not name.startswith(plugin + ".")
        for target in sorted(imports(path, modules, top_level_only=False))
        if target == plugin or target.startswith(plugin + ".")
    ]
    assert offences == []
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group="appliance.connectors")}
    assert declared.get("moodle") == "appliance.connectors.moodle:CONNECTOR"
