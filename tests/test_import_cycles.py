"""No import cycles among ospo_fast's modules, lazy imports included (scripts/check_import_cycles.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_import_cycles.py"


def checker():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("check_import_cycles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_import_cycle():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("0 import cycles")


def test_the_checker_finds_a_lazy_cycle_and_a_front_door_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "ops").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.ops.a import f\nfrom pkg.ops.c import g\n")
    (package / "ops" / "__init__.py").write_text("")
    (package / "ops" / "a.py").write_text("def f():\n    from pkg.ops import b\n    return b\n")
    (package / "ops" / "b.py").write_text("import pkg.ops.a\n")
    (package / "ops" / "c.py").write_text("import pkg as front\n\ndef g():\n    return front\n")
    (package / "ops" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg\nNAME = 'pkg.ops'\n"
    )
    check = checker()
    modules = check.module_files(package, None, package="pkg")
    graph = check.import_graph(modules)
    assert ["pkg.ops.a", "pkg.ops.b"] in check.cycles(graph)  # an import inside a function counts
    assert ["pkg", "pkg.ops.c"] in check.cycles(graph)  # so does an import of the front door
    assert graph["pkg.ops.d"] == set()  # TYPE_CHECKING imports and a string naming its own package do not
