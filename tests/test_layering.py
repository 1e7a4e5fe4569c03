"""DESIGN.md, Layers: refimpl/ imports only the standard library, itself and backends."""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALLOWED_TOP = {"refimpl", "backends", "__future__"}


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


@pytest.mark.parametrize(
    "path", sorted((ROOT / "refimpl").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_refimpl_imports_no_array_library(path):
    bad = []
    for lineno, name in _imports(path):
        top = name.split(".")[0]
        if top not in ALLOWED_TOP and top not in sys.stdlib_module_names:
            bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert not bad, "refimpl/ must ask backends/ instead:\n" + "\n".join(bad)


def test_backends_import_torch_lazily():
    """Importing backends (and refimpl) loads no optional array library."""
    import subprocess

    code = (
        "import sys, backends, refimpl, conformance; "
        "bad = [m for m in ('torch', 'cupy', 'array_api_strict') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
