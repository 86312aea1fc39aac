"""Every runtime dependency declared in pyproject.toml is imported by the package.

Why: a declared dependency nobody imports is installed on every machine for nothing and
misleads readers about what the bridge uses; one that is imported but not declared breaks a
fresh install. Both directions are checked from the source (``ast``) and the installed
distributions' metadata, so the test cannot drift from either.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(_normal(match.group(0)))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level() -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / "k8sbridge").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"k8sbridge", "__future__"}


def _distributions_of(modules: set[str]) -> dict[str, set[str]]:
    owners = importlib.metadata.packages_distributions()
    return {m: {_normal(d) for d in owners.get(m, [])} for m in modules}


def test_every_declared_dependency_is_imported() -> None:
    imported = set().union(*_distributions_of(_imported_top_level()).values())
    unused = _declared() - imported
    assert not unused, f"declared in pyproject.toml but never imported by k8sbridge: {unused}"


def test_every_imported_third_party_module_is_declared() -> None:
    declared = _declared()
    undeclared = {
        module: dists for module, dists in _distributions_of(_imported_top_level()).items()
        if not dists & declared
    }
    assert not undeclared, f"imported by k8sbridge but not declared: {undeclared}"
