"""A static import graph of the library (ast, so imports inside functions count too), for the layout rules.

`reach(repo_root, modules)` follows `litellm_mlflow` imports transitively, including the `__init__.py` of every
package on the way (importing a.b.c runs a/__init__ and a/b/__init__), and returns every dotted name imported on
the way with the chain of modules that leads to it, so a broken rule names the import to remove.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

LIBRARY = "litellm_mlflow"


def module_file(repo_root: Path, dotted: str) -> Path | None:
    """The file of a library module or package, or None when `dotted` names neither (e.g. a class)."""
    path = repo_root / Path(*dotted.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def module_name(repo_root: Path, path: Path) -> str:
    relative = path.resolve().relative_to(repo_root.resolve()).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_names(path: Path, module: str) -> list[str]:
    """Dotted names an import statement may refer to (a `from a.b import c` yields a.b and a.b.c)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{node.module}" if node.module else parent
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def _with_parents(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:length]) for length in range(1, len(parts) + 1)]


def reach(repo_root: Path, modules: list[str]) -> dict[str, tuple[str, ...]]:
    """Every dotted name imported, directly or not, by `modules` -> the chain of modules that imports it."""
    reached: dict[str, tuple[str, ...]] = {}
    queue: deque[tuple[str, tuple[str, ...]]] = deque()
    for start in modules:
        for name in _with_parents(start):
            if (name == start or name.split(".")[0] == LIBRARY) and name not in reached:
                reached[name] = ()
                queue.append((name, (name,)))
    while queue:
        module, chain = queue.popleft()
        path = module_file(repo_root, module)
        if path is None:
            continue
        for dotted in imported_names(path, module):
            for name in _with_parents(dotted):
                if name in reached:
                    continue
                reached[name] = chain
                if name.split(".")[0] == LIBRARY and module_file(repo_root, name) is not None:
                    queue.append((name, (*chain, name)))
    return reached


def modules_under(repo_root: Path, folder: str) -> list[str]:
    """Dotted names of every .py file under `folder` (a path relative to the repository)."""
    return sorted(module_name(repo_root, path) for path in (repo_root / folder).rglob("*.py"))


def violations(reached: dict[str, tuple[str, ...]], forbidden: set[str]) -> list[str]:
    """'chain -> name' for every reached name that is, or is inside, a forbidden package; shortest chains first."""
    found = [
        (chain, name)
        for name, chain in reached.items()
        if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)
    ]
    return [" -> ".join((*chain, name)) for chain, name in sorted(found, key=lambda item: (len(item[0]), item[1]))]
