"""The agent stands alone: it imports nothing of ``k8sbridge`` outside ``k8sbridge.kernel`` (a
stand-in that shares code with the product agrees with the product's bugs), its modules import
each other without cycles, and none is over 600 lines. Every import statement counts, including
those under ``TYPE_CHECKING`` and inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import k8sbridge.kernel.agent as agent_pkg

_ROOT = Path(agent_pkg.__file__).parent
_PREFIX = "k8sbridge.kernel.agent"


def _modules() -> dict[str, Path]:
    return {f"{_PREFIX}.{p.stem}" if p.stem != "__init__" else _PREFIX: p
            for p in sorted(_ROOT.glob("*.py"))}


def _imports(path: Path, module: str) -> set[str]:
    out: set[str] = set()
    package = module if path.stem == "__init__" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def test_the_agent_imports_nothing_of_k8sbridge_outside_the_kernel() -> None:
    outside = {
        (module, name)
        for module, path in _modules().items()
        for name in _imports(path, module)
        if name.split(".")[0] == "k8sbridge" and not name.startswith("k8sbridge.kernel")
    }
    assert outside == set()


def test_the_agent_modules_have_no_import_cycle() -> None:
    modules = _modules()
    graph = {m: {n for n in _imports(p, m) if n in modules and n != m}
             for m, p in modules.items()}
    graph[_PREFIX] = set()  # the package's __init__ re-exports; importing it is not a cycle
    for deps in graph.values():
        deps.discard(_PREFIX)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_agent_module_is_over_600_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in _modules().values()}
    assert {name: n for name, n in sizes.items() if n > 600} == {}
