"""The house's import rules, checked on the source (``ast``) so they stay true.

Imports run one way: cli/demo -> workflows, export -> io, steps, simulation -> catalogs ->
kernels -> errors, _version, atomic, lockfile (the bottom: stdlib only). Kernels import only numpy,
numba, math and the standard library (plus the bottom modules); catalogs never imports
numba, not even through another module at import time (reading metadata never pays for
numba's start-up); no module imports the package root (the lazy public facade) except the
command line and the demo; no import circle between modules at import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "eo_pipeline"
BOTTOM = {"errors", "_version", "atomic", "lockfile"}
# room -> rooms it may import (besides itself and the bottom modules)
ALLOWED: dict[str, set[str]] = {
    "kernels": set(),
    "catalogs": {"kernels"},
    # 6S driver, LUT files and their reduction (numpy only; beside catalogs, below steps)
    "atmosphere": {"catalogs"},
    "io": {"catalogs", "kernels", "steps", "simulation", "atmosphere"},
    "steps": {"catalogs", "kernels", "io", "simulation", "atmosphere"},
    "simulation": {"catalogs", "kernels", "io", "steps", "atmosphere"},
    "export": {"catalogs", "kernels", "io", "steps", "simulation", "atmosphere"},
    "workflows": {"catalogs", "kernels", "io", "steps", "simulation", "atmosphere"},
    "accessor": {"catalogs", "kernels", "io", "steps", "simulation", "atmosphere"},
    "atomic": set(),
    "lockfile": set(),
    "errors": set(),
    "_version": set(),
}
TOP = {"cli", "demo", "<root>"}  # may import anything
KERNEL_THIRD_PARTY = {"numpy", "numba"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    return _parse(path.read_text(encoding="utf-8"), _module_name(path),
                  path.name == "__init__.py", top_level_only=top_level_only)  # fmt: skip


def _parse(text: str, me: str, package: bool, *, top_level_only: bool) -> set[str]:
    """Absolute names a module imports (``from a import b`` gives ``a`` and, when ``a.b`` is a
    module, ``a.b``); ``if TYPE_CHECKING:`` blocks are left out (they never run)."""
    tree = ast.parse(text)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".")
                if not package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES}
    return out


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def test_every_module_is_in_a_known_room() -> None:
    rooms = {_room(m) for m in MODULES}
    new = rooms - set(ALLOWED) - TOP
    assert not new, (
        f"new top-level room(s) {sorted(new)}: put the code in an existing room, or add the room "
        "to ALLOWED here with the rooms it may import (and to README / docs/conventions.md)"
    )


def test_imports_run_one_way() -> None:
    wrong = []
    for module, path in MODULES.items():
        room = _room(module)
        if room in TOP:
            continue
        ok = ALLOWED[room] | BOTTOM | {room}
        for name in _imports(path, top_level_only=False):
            if name == "eo_pipeline":
                wrong.append(f"{module} imports the package root (the public facade)")
            elif name.startswith("eo_pipeline.") and _room(name) not in ok:
                wrong.append(f"{module} ({room}) imports {name} ({_room(name)})")
    assert not wrong, "\n".join(wrong)


def test_kernels_import_only_numpy_numba_math_and_stdlib() -> None:
    wrong = []
    for module, path in MODULES.items():
        if _room(module) != "kernels":
            continue
        for name in _imports(path, top_level_only=False):
            head = name.split(".")[0]
            if head == "eo_pipeline":
                if _room(name) not in BOTTOM | {"kernels"}:
                    wrong.append(f"{module} imports {name}")
            elif head not in KERNEL_THIRD_PARTY and head not in sys.stdlib_module_names:
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle() -> None:
    graph = {
        m: {n for n in _imports(p, top_level_only=True) if n in MODULES and n != m}
        for m, p in MODULES.items()
    }
    # a package imports its submodules' parents implicitly; only module -> module edges count
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_lazy_relative_and_type_only_imports() -> None:
    text = (
        "from typing import TYPE_CHECKING\n"
        "from . import spec\n"
        "if TYPE_CHECKING:\n    from eo_pipeline.export import sales\n"
        "def f():\n    from eo_pipeline.workflows.runner import run\n"
    )
    me = "eo_pipeline.workflows.process"
    lazy = _parse(text, me, False, top_level_only=False)
    assert {"eo_pipeline.workflows.spec", "eo_pipeline.workflows.runner"} <= lazy
    assert "eo_pipeline.export.sales" not in lazy
    assert "eo_pipeline.workflows.runner" not in _parse(text, me, False, top_level_only=True)


_NO_NUMBA = """
import importlib, pkgutil, sys
import eo_pipeline.catalogs as c
for m in pkgutil.walk_packages(c.__path__, "eo_pipeline.catalogs."):
    importlib.import_module(m.name)
import eo_pipeline
for path in sys.argv[1:]:
    eo_pipeline.read_metadata(path)
loaded = sorted(k for k in sys.modules if k == "numba" or k.startswith("numba."))
print("numba loaded:", loaded[:3] if loaded else "no")
raise SystemExit(1 if loaded else 0)
"""


def test_catalogs_and_metadata_readers_never_import_numba(request: pytest.FixtureRequest) -> None:
    """Every catalogs module, and read_metadata on the real scenes when they are here."""
    files = []
    for fixture, name in (
        ("landsat_dir", "LC08_L2SP_001070_20190114_20200830_02_T2_MTL.txt"),
        ("s2_dir", "MTD_MSIL1C.xml"),
    ):
        try:
            files.append(str(request.getfixturevalue(fixture) / name))
        except pytest.skip.Exception:
            pass
    res = subprocess.run(
        [sys.executable, "-c", _NO_NUMBA, *files], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr


# (module, call) pairs that are not whole-file writes: folder swaps and moves, a write probe,
# the signing key's create-if-absent (a link, so concurrent servers agree on one key)
NOT_FILE_WRITES = {
    ("eo_pipeline.catalogs.store", "os.replace"),
    ("eo_pipeline.export.publishing", "os.replace"),
    ("eo_pipeline.export.api.signing", "os.replace"),
    ("eo_pipeline.export.api.signing", "tempfile.mkstemp"),
    ("eo_pipeline.workflows.runner", ".write_text"),
}


def test_whole_files_are_written_through_the_one_atomic_helper() -> None:
    """No hand-rolled ``tmp + os.replace`` or bare ``write_text`` outside eo_pipeline.atomic."""
    wrong = []
    for module, path in MODULES.items():
        if module == "eo_pipeline.atomic":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            f = node.func
            owner = f.value.id if isinstance(f.value, ast.Name) else ""
            call = f"{owner}.{f.attr}" if owner in ("os", "tempfile") else f".{f.attr}"
            if call in {
                "os.replace",
                "os.rename",
                "tempfile.mkstemp",
                ".write_text",
                ".write_bytes",
            }:
                if (module, call) not in NOT_FILE_WRITES:
                    wrong.append(f"{module}:{node.lineno} {call}")
    assert not wrong, (
        "use eo_pipeline.atomic (atomic_write / write_json / atomic_path):\n" + "\n".join(wrong)
    )
