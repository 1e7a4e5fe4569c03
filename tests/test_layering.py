"""The layers of docs/design.md: import-linter's contracts (pyproject.toml) hold, every
module of ``backends`` imports alone, and importing the packages loads no optional array
library."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BACKEND_MODULES = sorted(
    "backends" + ("" if p.stem == "__init__" else f".{p.stem}")
    for p in (ROOT / "backends").glob("*.py")
)


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: pip install -e '.[test]' installs import-linter")
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "broken" not in proc.stdout.split("Contracts:")[-1].split("\n")[0].replace(
        "0 broken", ""
    ), proc.stdout


@pytest.mark.parametrize("module", BACKEND_MODULES)
def test_each_backends_module_imports_first_and_alone(module):
    """No import circle: any module of ``backends`` works as the first import of a fresh
    interpreter (a circle shows as an ImportError for one import order or another)."""
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_importing_the_packages_loads_no_optional_library():
    code = (
        "import sys, backends, refimpl, conformance; "
        "import refimpl.attr, refimpl.eigendistortion, refimpl.optim, refimpl.perturbations, "
        "refimpl.perturbed, refimpl.linops, refimpl.models; "
        "bad = [m for m in ('torch', 'cupy', 'jax', 'array_api_strict') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
