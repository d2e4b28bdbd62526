"""Print the local modules a stage imports (transitively): the code deps dvc.yaml must list.

Usage: python tools/stage_deps.py stages.mse [stages.train_dense_ae ...]
tests/test_dvc_yaml.py uses the same function to keep dvc.yaml honest.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ("asdlib", "stages")
IGNORED = {"stages/__init__.py", "asdlib/__init__.py"}


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in LOCAL}


def stage_deps(module: str) -> list[str]:
    """Repository-relative files of every local module ``module`` imports, itself included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):
            found = _module_file(".".join(parts[:i]))
            if found and found not in seen:
                seen.add(found)
                todo.extend(_imports(found))
    return sorted(str(p.relative_to(ROOT)) for p in seen if str(p.relative_to(ROOT)) not in IGNORED)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}:")
        for dep in stage_deps(name):
            print(f"      - {dep}")
