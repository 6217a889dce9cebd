"""Check Debrief's import graph: no cycles, learner imports no server, and server wings import only downward.

Run by CI (scripts/test.sh). Reads the source with ``ast`` (nothing is imported), counts every import, including
those inside functions and under ``TYPE_CHECKING``, and prints each violation it finds; exit status 1 if any.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Higher layers may import lower ones, never the reverse. Wings in one layer may not import each other.
LAYERS: list[set[str]] = [
    {"cli"},
    {"mcp"},
    {"learning"},
    {"store"},
    {"chroma", "embedding", "backends"},
    {"settings", "errors", "version"},
    {"learner"},
]


def module_name(path: Path) -> str:
    """The dotted module name of a source file under ``server/`` or ``learner/``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["debrief", *parts])


def imports_of(path: Path) -> set[str]:
    """Every ``debrief.…`` module a file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("debrief.")}


def room(module: str) -> str:
    """The wing (or ``learner``) a module belongs to."""
    parts = module.split(".")
    if parts[1] == "learner":
        return "learner"
    # ``python -m debrief.server`` is the entry point above every wing.
    return parts[2] if len(parts) > 2 and parts[2] != "__main__" else "server"


def layer_of(name: str) -> int | None:
    """The layer index of a wing, top first; None for a name in no layer."""
    return next((index for index, rooms in enumerate(LAYERS) if name in rooms), None)


def main() -> int:
    """Print cycles and upward imports; return 1 if there are any."""
    files = [p for folder in ("server", "learner") for p in (ROOT / folder).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    problems: list[str] = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = room(name), room(target)
            if here == there or here in {"server"}:
                continue
            high, low = layer_of(here), layer_of(there)
            if high is None or low is None or high >= low:
                problems.append(f"upward or sideways import: {name} ({here}) imports {target} ({there})")
    problems.extend(f"import cycle among: {', '.join(cycle[:-1])}" for cycle in cycles(graph))
    for problem in problems:
        print(problem)
    print(f"{len(modules)} modules, {sum(len(t) for t in graph.values())} imports, {len(problems)} problems")
    return 1 if problems else 0


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append([*sorted(component), sorted(component)[0]])

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


if __name__ == "__main__":
    sys.exit(main())
