"""The layout rules of docs/architecture.md ("Layout"), checked from the source.

Every ``import`` of every pixline module is read with :mod:`ast`, including imports inside functions
(which hide cycles from a plain ``import``), and the resulting graph must have no cycle and no edge
in a forbidden direction. Sizes: no module over 400 lines, no function over 60.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Source folder → the import name it installs as (setup.cfg's package_dir).
PACKAGES = {"api": "pixline", "engine": "pixline.engine", "server": "pixline.server",
            "recipes": "pixline.recipes"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_files() -> dict[str, Path]:
    """Every pixline module of the checkout (core and first-party plugins) by its import name."""
    roots = {ROOT / folder: name for folder, name in PACKAGES.items()}
    roots.update({pkg: pkg.name for pkg in ROOT.glob("plugins/*/pixline_*") if pkg.is_dir()})
    modules: dict[str, Path] = {}
    for folder, name in roots.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([name, *parts])] = path
    return modules


MODULES = module_files()


def resolve(module: str, path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The pixline modules an import statement in ``module`` (file ``path``) reaches."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        # ``from pkg import name``: the submodule pkg.name when there is one, else pkg itself.
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    found = []
    for target in targets:
        while target and target not in MODULES:  # ``import a.b.c`` names a, a.b and a.b.c
            target = target.rpartition(".")[0]
        if target:
            found.append(target)
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(t for t in resolve(module, path, node) if t != module)
        graph[module] = edges
    return graph


GRAPH = import_graph()


#: The modules of the top-level package (api/): the engine's public faces.
TOP_LEVEL_OF_THE_ENGINE = ("pixline", "pixline.testing", "pixline.pytest_plugin", "pixline.recipes")


def room(module: str) -> str:
    """The part of the system a module belongs to, in the terms of the rules below."""
    if module.startswith("pixline.server."):
        return ".".join(module.split(".")[:3])  # pixline.server.http, .queue, .commands, .settings
    if module.startswith("pixline.engine") or module in TOP_LEVEL_OF_THE_ENGINE:
        return "engine"  # the top-level package is the engine's Python API
    if module == "pixline.server":
        return "pixline.server"
    return "plugin"


#: room → the rooms it may import (besides itself). Imports run commands → http → queue → engine;
#: settings is a leaf every server room may read; plugins see only the engine.
ALLOWED = {
    "engine": set(),
    "plugin": {"engine"},
    "pixline.server.settings": {"engine"},
    "pixline.server.queue": {"engine", "pixline.server.settings"},
    "pixline.server.http": {"engine", "pixline.server.settings", "pixline.server.queue"},
    "pixline.server.commands": {"engine", "pixline.server.settings", "pixline.server.queue",
                                "pixline.server.http"},
    "pixline.server": set(),
}
#: Within the queue, the HTTP side may use only the job message and the publisher interface.
HTTP_MAY_IMPORT_FROM_QUEUE = {"pixline.server.queue.jobs"}


def test_the_source_tree_is_found() -> None:
    assert {"pixline.engine.pipeline", "pixline.server.http.app", "pixline.server.queue.handler",
            "pixline.server.commands.cli", "pixline_resize"} <= set(MODULES)
    assert "pixline.engine.steps" in GRAPH["pixline_resize"] or "pixline.engine" in GRAPH["pixline_resize"]


def test_imports_inside_functions_are_seen() -> None:
    # gunicorn_app builds the app after the fork, importing it inside a function.
    assert "pixline.server.http.app" in GRAPH["pixline.server.commands.gunicorn_app"]


def test_imports_run_one_way() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        for target in targets:
            src, dst = room(module), room(target)
            if src != dst and dst not in ALLOWED[src]:
                wrong.append(f"{module} imports {target} ({src} may not import {dst})")
            if (src == "pixline.server.http" and dst == "pixline.server.queue"
                    and target not in HTTP_MAY_IMPORT_FROM_QUEUE):
                wrong.append(f"{module} imports {target}: the HTTP side uses only queue.jobs")
    assert not wrong, "\n".join(sorted(wrong))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    # A package's __init__ re-exporting its modules is not a cycle unless a module imports it back.
    cycle = find_cycle(GRAPH)
    assert cycle is None, " → ".join(cycle or [])


SOURCE_FOLDERS = ("api", "engine", "server", "recipes", "plugins", "tests", "bench")


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    too_big = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            # build output, and hidden folders such as bench/.peer-thumbor (the peer's virtualenv)
            if "build" in parts or any(part.startswith(".") for part in parts):
                continue
            text = path.read_text()
            where = path.relative_to(ROOT)
            if text.count("\n") > MAX_MODULE_LINES:
                too_big.append(f"{where}: {text.count(chr(10))} lines")
            too_big += [f"{where}: {node.name}() is {node.end_lineno - node.lineno + 1} lines"
                        for node in ast.walk(ast.parse(text))
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not too_big, "\n".join(too_big)
