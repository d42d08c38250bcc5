"""The project's source files a script runs: the closure of its ``genmodels`` imports.

A DVC stage must list as ``deps`` every source file it runs, so that editing one re-runs
exactly the stages that use it (issue 13). Kept by hand, the list drifts; this module
computes it from the code, and ``tests/test_dvc_deps.py`` compares it with ``dvc.yaml``.

The analysis is static (``ast``, nothing is imported or run): every ``import`` statement
counts wherever it stands, in a function or under an ``if`` too, since a stage may run
it. Only modules of the ``genmodels`` package are followed; the package ``__init__``
files hold docstrings only (``test_dvc_deps`` checks it) and are left out.

    python -m genmodels.imports stages/train_text.py    # the deps, one per line
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "genmodels"


def module_file(module: str, src: Path) -> Path | None:
    """``genmodels.text.train`` -> ``src/genmodels/text/train.py`` (or a package's
    ``__init__.py``); None for a module outside the package or not found."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = src.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path, src: Path) -> set[str]:
    """Names of the modules ``path`` imports (``from a import b`` gives ``a.b`` when b is
    a module, else ``a``), relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    try:
        package = ".".join(path.resolve().relative_to(src.resolve()).with_suffix("").parts[:-1])
    except ValueError:  # a script outside src/ (stages/*.py): no relative imports
        package = ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..text import y
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            for alias in node.names:  # a submodule, if there is one by that name
                if module_file(f"{base}.{alias.name}", src) is not None:
                    found.add(f"{base}.{alias.name}")
    return found


def closure(script: str | Path, src: str | Path = "src") -> list[Path]:
    """Every ``genmodels`` source file ``script`` runs, directly or through another, package
    ``__init__`` files left out; sorted, relative to the working directory's layout
    (``src/genmodels/...``)."""
    src = Path(src)
    todo, seen = [Path(script)], set()
    files: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, src):
            found = module_file(module, src)
            if found is None:
                continue
            if found.name != "__init__.py":
                files.add(found)
            # importing a.b.c runs a, a.b and a.b.c: follow each (their __init__ files too)
            parts = module.split(".")
            for i in range(1, len(parts) + 1):
                parent = module_file(".".join(parts[:i]), src)
                if parent is not None and parent not in seen:
                    todo.append(parent)
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    for script in argv if argv is not None else sys.argv[1:]:
        for path in closure(script):
            print(path.as_posix())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
