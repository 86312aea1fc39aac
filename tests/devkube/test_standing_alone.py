"""devkube is a stand-in for kube-apiserver: it imports nothing of k8sbridge outside its own
package (a parser or helper shared with the bridge would agree with the bridge's bugs), and its
hand-written modules stay under 600 lines (generated ones say so at the top)."""

from __future__ import annotations

import ast
from pathlib import Path

import k8sbridge.devkube

PACKAGE = Path(k8sbridge.devkube.__file__).parent


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_devkube_imports_nothing_of_k8sbridge_outside_itself() -> None:
    assert len(_modules()) > 20  # the walk really sees the package
    outside = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in _modules() for name in _imported(path)
        if name.split(".")[0] == "k8sbridge" and not (
            name == "k8sbridge.devkube" or name.startswith("k8sbridge.devkube."))
    }
    assert outside == set()


def test_hand_written_modules_are_at_most_600_lines() -> None:
    too_long = []
    for path in _modules():
        lines = path.read_text().splitlines()
        generated = any("generated" in line.lower() for line in lines[:8])
        if len(lines) > 600 and not generated:
            too_long.append(f"{path.relative_to(PACKAGE)}: {len(lines)}")
    assert too_long == []
