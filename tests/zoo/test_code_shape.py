"""The house's shape, checked: no import cycles between zoo's modules (lazy imports included;
type-only imports are not imports at run time), and no function longer than a screen."""

from __future__ import annotations

import ast
from pathlib import Path

import zoo

PACKAGE = Path(zoo.__file__).parent
LONGEST = 60  # lines, a screen


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph = {}
    for path in PACKAGE.glob("*.py"):
        deps = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoo"):
                parts = node.module.split(".")  # type: ignore[union-attr]
                deps.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        graph[path.stem] = {d for d in deps if d in modules and d != path.stem}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path of modules, or None."""
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep] if dep in path else [module, dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_zoo_has_no_import_cycles() -> None:
    graph = import_graph()
    assert "runner" in graph and graph["runner"]  # the graph was read
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_in_zoo_is_longer_than_a_screen() -> None:
    long = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > LONGEST:  # type: ignore[operator]
                    long.append(f"{path.name}:{node.name} ({node.end_lineno - start + 1} lines)")  # type: ignore[operator]
    assert not long, long


def test_no_public_name_is_also_a_module() -> None:
    """zoo.leaderboard, a function, once hid the module zoo.leaderboard from `from . import leaderboard` in a fresh
    process (importing the module sets the attribute back, so in-process tests passed): the public names and the
    modules must differ."""
    package = Path(zoo.__file__).parent
    clashes = [name for name in zoo.__all__ if (package / f"{name}.py").is_file() or (package / name).is_dir()]  # a folder imports too
    assert clashes == []
