"""Which third-party modules the Lambda handlers can import, following `litellm_mlflow` imports transitively.

Static (ast), so it also sees imports inside functions: a module the layer lacks shows up here, not as an
ImportError on the first real batch in Lambda.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIBRARY = "litellm_mlflow"


def _library_module_file(repo_root: Path, dotted: str) -> Path | None:
    path = repo_root / Path(*dotted.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(tree: ast.AST, package: str) -> list[str]:
    """Dotted names an import statement may refer to (a `from a.b import c` yields a.b and a.b.c)."""
    names: list[str] = []
    for node in ast.walk(tree):
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


def walk_imports(repo_root: Path, entry_points: list[Path]) -> tuple[dict[str, set[str]], set[Path]]:
    """(third-party dotted module -> the modules importing it, every library file reached) for the handlers."""
    found: dict[str, set[str]] = {}
    library_files: set[Path] = set()
    seen: set[str] = set()
    pending = [(path, f"handler:{path.parent.name}", "") for path in entry_points]
    while pending:
        path, name, package = pending.pop()
        for dotted in _imported_names(ast.parse(path.read_text()), package):
            top = dotted.split(".")[0]
            if top == LIBRARY:
                module_file = _library_module_file(repo_root, dotted)
                if module_file is not None and dotted not in seen:
                    seen.add(dotted)
                    library_files.add(module_file)
                    sub_package = dotted if module_file.name == "__init__.py" else dotted.rpartition(".")[0]
                    pending.append((module_file, dotted, sub_package))
            elif top and top not in sys.stdlib_module_names:
                found.setdefault(dotted, set()).add(name)
    return found, library_files


def third_party_imports(repo_root: Path, entry_points: list[Path]) -> dict[str, set[str]]:
    """Third-party dotted module -> the modules importing it, for the handlers and the library they reach."""
    return walk_imports(repo_root, entry_points)[0]


def library_files_reached(repo_root: Path, entry_points: list[Path]) -> set[Path]:
    """Every litellm_mlflow file the handlers import, directly or through each other (parent packages included)."""
    files = walk_imports(repo_root, entry_points)[1]
    for path in list(files):
        parent = path.parent
        while parent != repo_root and (parent / "__init__.py").is_file():
            files.add(parent / "__init__.py")
            parent = parent.parent
    return files


def resolvable_in(site_dir: Path, dotted: str) -> bool:
    """True when `dotted` is a package/module under site_dir, or an attribute of one (from a.b import C)."""
    parts = dotted.split(".")
    for length in (len(parts), len(parts) - 1):
        if length == 0:
            continue
        path = site_dir / Path(*parts[:length])
        if (
            path.is_dir()
            or path.with_suffix(".py").is_file()
            or list(site_dir.glob(f"{'/'.join(parts[:length])}.*.so"))
        ):
            return True
    return False
