"""Find import cycles among the modules of ospo_fast, lazy imports included.

    python scripts/check_import_cycles.py          # prints each cycle; exit status 1 if any

Every ``import`` and ``from … import`` counts, wherever it is (inside functions too),
except those under ``if TYPE_CHECKING:``, which never run. A string constant that names
a package module counts too (``importlib.import_module("…")``, lazy attribute tables),
unless it names a package that holds the module itself (``resources.files``).
Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those count as
edges, except for packages that contain the importing module (they are already running).
The Triton kernels in ``kernels/triton/`` are the installed ``ospo_fast.kernels``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ospo_fast"


def module_files(package_dir: Path, kernels_dir: Path | None, package: str = PACKAGE) -> dict[str, Path]:
    """Module name -> source file (``.py``; a ``.pyi`` stub stands for an extension module)."""
    modules: dict[str, Path] = {}
    trees = [(package_dir, package)] + ([(kernels_dir, f"{package}.kernels")] if kernels_dir else [])
    for directory, prefix in trees:
        for path in sorted(directory.rglob("*.py*")):
            if path.suffix not in (".py", ".pyi") or "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(directory).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([prefix, *parts])
            if path.suffix == ".py" or name not in modules:
                modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, leaving out the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].stem == "__init__"


def imported_names(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` runs when it (or any of its functions) runs."""
    if path.suffix == ".pyi":
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own_package = name if _is_package(name, modules) else name.rpartition(".")[0]
    targets: set[str] = set()
    named: set[str] = set()  # string constants: a resource path or cache folder may spell a package's name
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules:
            named.add(node.value)
    # A string naming a package that holds this module (resources.files, a folder name) imports nothing new.
    targets |= {target for target in named if not (name == target or name.startswith(target + "."))}
    edges: set[str] = set()
    for target in targets:
        if target not in modules:
            continue
        parts = target.split(".")
        for depth in range(1, len(parts) + 1):
            ancestor = ".".join(parts[:depth])
            running = name == ancestor or name.startswith(ancestor + ".")
            if ancestor in modules and ancestor != name and (depth == len(parts) or not running):
                edges.add(ancestor)
    return edges


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imported_names(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def main() -> int:
    modules = module_files(ROOT / "python" / PACKAGE, ROOT / "kernels" / "triton")
    found = cycles(import_graph(modules))
    for component in found:
        print("import cycle among: " + ", ".join(component))
    print(f"{len(modules)} modules, {len(found)} import cycles")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
