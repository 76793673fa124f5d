"""The house rules the linters do not check: no import cycles between ygg's modules, no module
over 400 lines, no function over 50. Exits 1 naming each breach; `.ci/run` runs it.

    python scripts/check_structure.py

Imports inside `if TYPE_CHECKING:` are not cycles (they never run); imports inside functions
are (they run when the function does), so both kinds of runtime import are followed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ygg"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """The ygg modules `tree` imports when it runs (a package import counts its __init__)."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return {name for name in found if name in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def main() -> int:
    files = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in files.items()}
    problems: list[str] = []
    for name, tree in trees.items():
        path = files[name].relative_to(PACKAGE.parent)
        lines = len(files[name].read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{path}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{path}:{node.lineno}: {node.name}() is {length} lines")
    # A package's __init__ importing its own submodules is how packages are built, not a cycle.
    graph = {
        name: {m for m in runtime_imports(tree, set(files)) if not m.startswith(f"{name}.")}
        for name, tree in trees.items()
    }
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import cycle: " + " -> ".join(cycle))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
