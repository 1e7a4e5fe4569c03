"""rai-toolbox 0.2.1's own tests of ``rai_toolbox.optim`` and ``rai_toolbox.perturbations``,
run against this project's torch front ends with only the imports redirected.

Usage::

    python -m tests.upstream.rai_toolbox [-v] [-k EXPR]

prints ``passed N/M`` (M: the tests that ran; skips are listed apart) and the ids of the
failing tests, and exits 0 when the failures are exactly ``EXPECTED_FAILURES``.

Sources. rai-toolbox's sdist on PyPI holds no tests (``pip download rai-toolbox==0.2.1
--no-binary :all:`` gives ``src/`` only), so the tests come from the repository at the tag
``v0.2.1`` (commit 4c123c5d998b692c0f3b9ba835dc55bc5cd45ab6): its GitHub archive, else
``git clone``, else a checkout named by ``$REFIMPL_RAI_TOOLBOX_SOURCE``. They are cached
under ``$REFIMPL_UPSTREAM_CACHE`` (default ``~/.cache/refimpl-upstream``), in
``rai-toolbox-0.2.1/``. The test-only dependencies that may be missing (``omegaconf``, for
``ListConfig`` shapes) are installed with pip into ``rai-toolbox-0.2.1/deps`` there, never
into the environment.

What runs. ``tests/test_optim/*.py`` and ``tests/test_perturbations/*.py`` (the solvers'
tests included), copied unchanged into ``rai-toolbox-0.2.1/run``, with a conftest of ours
instead of rai's (which needs ``pkg_resources`` only to skip its mushin tests): the same
hypothesis profile as rai's tox (``ci``: no deadline), made reproducible (derandomized, no
example database) so that the counts are stable. rai-toolbox itself must be installed
(the tests also use its helpers ``to_batch``, ``_typing``).

The redirection. Before collection, every public class and function that rai defines in
``rai_toolbox.optim``, ``rai_toolbox.perturbations`` and their modules (``optimizer``,
``lp_space``, ``frank_wolfe``, ``misc``, ``init``, ``models``, ``solvers``) is replaced,
in those modules' namespaces, by the object of the same name in ``refimpl.torch``
(``gradient_ascent``, ``random_restart`` and ``PerturbationModel`` included). rai's private
helpers stay rai's unless ``--private`` (then ``_LpNormOptimizer`` and ``_replace_best``,
which the tests import, are ours too, and ``EXPECTED_FAILURES_PRIVATE`` applies). ``-v``
lists the names left to rai; ``test_rai_toolbox_suite.py`` checks that no public one is.

Counts (0.2.1's tests, torch 2.13 CPU): public names 177/177 (21 skipped, 2 xfailed by
rai's own marks); ``--private`` 174/177, the 3 tests of rai's private ``_LpNormOptimizer``
internals failing as listed.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = "0.2.1"
TAG = "v0.2.1"
COMMIT = "4c123c5d998b692c0f3b9ba835dc55bc5cd45ab6"
ARCHIVE = f"https://github.com/mit-ll-responsible-ai/responsible-ai-toolbox/archive/refs/tags/{TAG}.tar.gz"
REPOSITORY = "https://github.com/mit-ll-responsible-ai/responsible-ai-toolbox.git"
#: the suites run, relative to the repository's tests/
SUITES = ("test_optim", "test_perturbations")
#: test-only dependencies: import name -> pip requirement
TEST_DEPENDENCIES = {"hypothesis": "hypothesis", "omegaconf": "omegaconf"}
#: rai's modules whose names are redirected
REDIRECTED_MODULES = (
    "rai_toolbox.optim",
    "rai_toolbox.optim.optimizer",
    "rai_toolbox.optim.lp_space",
    "rai_toolbox.optim.frank_wolfe",
    "rai_toolbox.optim.misc",
    "rai_toolbox.perturbations",
    "rai_toolbox.perturbations.init",
    "rai_toolbox.perturbations.models",
    "rai_toolbox.perturbations.solvers",
)
#: where this project's counterparts are looked up, first match wins (per rai module, the
#: refimpl module of the same role comes first)
OURS = (
    "refimpl.torch.optim.optimizer",
    "refimpl.torch.optim.lp_space",
    "refimpl.torch.optim.frank_wolfe",
    "refimpl.torch.optim.misc",
    "refimpl.torch.optim",
    "refimpl.torch.solvers",
    "refimpl.torch.perturbations",
    "refimpl.torch",
)
#: test id -> why it fails here on purpose (each reason is an entry of docs/differences.md)
EXPECTED_FAILURES: dict[str, str] = {}
#: ... and with ``--private`` (rai's private helpers redirected too): tests of rai's
#: internals, which this project's private classes do not reproduce
EXPECTED_FAILURES_PRIVATE: dict[str, str] = {
    **EXPECTED_FAILURES,
    "test_optim/test_grad_transformation.py::test_lp_optimizer_uses_correct_norms": (
        "subclasses the private _LpNormOptimizer and calls its per_datum_norm method, which "
        "refimpl's private class of that name does not have (its norms are refimpl.optim's)"
    ),
    "test_optim/test_validation.py::test_LpNormProjectedOptimizer_requires_p": (
        "builds a private _LpNormOptimizer subclass without _p on params=[]: refimpl refuses "
        "the empty params first (ValueError, as torch.optim does), rai checks _p first "
        "(TypeError)"
    ),
    "test_optim/test_validation.py::test_non_numeric_p_raises": (
        "the same: a non-numeric _p on params=[]; refimpl's ValueError for the empty params "
        "comes first"
    ),
}

CONFTEST = '''"""Replaces rai-toolbox's tests/conftest.py (written by tests/upstream/rai_toolbox.py):
the hypothesis profile of rai's tox ("ci": no deadline), derandomized and without an example
database so that counts are reproducible, and rai's cleandir fixture."""
import logging
import os

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True, database=None)
settings.load_profile("ci")


@pytest.fixture()
def cleandir(tmp_path):
    old_dir = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old_dir)
    logging.shutdown()
'''


def cache_dir() -> Path:
    root = os.environ.get("REFIMPL_UPSTREAM_CACHE") or Path.home() / ".cache" / "refimpl-upstream"
    return Path(root) / f"rai-toolbox-{VERSION}"


def sources(cache: Path | None = None) -> Path:
    """The repository's ``tests/`` at ``v0.2.1`` (downloaded once, then cached)."""
    cache = cache or cache_dir()
    tests = cache / "tests"
    if all((tests / suite).is_dir() for suite in SUITES):
        return tests
    cache.mkdir(parents=True, exist_ok=True)
    given = os.environ.get("REFIMPL_RAI_TOOLBOX_SOURCE")
    errors = []
    if given:
        _copy_tests(Path(given) / "tests", tests)
        return tests
    try:
        with urllib.request.urlopen(ARCHIVE, timeout=60) as response:
            _extract_tests(response.read(), tests)
        return tests
    except OSError as exc:
        errors.append(f"{ARCHIVE}: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        clone = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", "--branch", TAG, REPOSITORY, tmp],
            capture_output=True,
            text=True,
        )
        if clone.returncode == 0:
            _copy_tests(Path(tmp) / "tests", tests)
            return tests
        errors.append(f"git clone {REPOSITORY}: {clone.stderr.strip()}")
    raise RuntimeError(
        f"could not get rai-toolbox {TAG}'s tests (its PyPI sdist has none):\n  "
        + "\n  ".join(errors)
        + f"\nput the repository at {TAG} somewhere and set REFIMPL_RAI_TOOLBOX_SOURCE to it, "
        f"or copy its tests/ to {tests}"
    )


def _copy_tests(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise RuntimeError(f"{src} is not a directory (expected rai-toolbox {TAG}'s tests/)")
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def _extract_tests(archive: bytes, dst: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if "/tests/" in m.name and m.isreg()]
        tar.extractall(tmp, members=members, filter="data")
        (top,) = Path(tmp).iterdir()
        _copy_tests(top / "tests", dst)


def dependencies(cache: Path | None = None) -> Path | None:
    """A folder to put on ``sys.path`` with the missing test-only dependencies (pip
    ``--target``), or None when all are importable."""
    missing = [req for mod, req in TEST_DEPENDENCIES.items() if not _importable(mod)]
    deps = (cache or cache_dir()) / "deps"
    if not missing:
        return None
    if deps.is_dir() and all(_importable(m, deps) for m in TEST_DEPENDENCIES):
        return deps
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(deps), *missing]
    subprocess.run(pip, check=True)
    return deps


def _importable(module: str, path: Path | None = None) -> bool:
    if path is None:
        return importlib.util.find_spec(module) is not None
    code = f"import sys; sys.path.insert(0, {str(path)!r}); import {module}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def redirect(private: bool = False) -> dict[str, dict[str, str]]:
    """Replace rai's optim and perturbations names by this project's (its private ``_``
    names too with ``private``); returns, per rai module, ``{"redirected": [...], "kept":
    [...]}`` (the names left to rai)."""
    ours = [importlib.import_module(m) for m in OURS]
    report: dict[str, Any] = {}
    for name in REDIRECTED_MODULES:
        module = importlib.import_module(name)
        done, kept = [], []
        for attr, value in sorted(vars(module).items()):
            defined_in = getattr(value, "__module__", None) or ""
            if attr.startswith("__") or not defined_in.startswith(
                ("rai_toolbox.optim", "rai_toolbox.perturbations")
            ):
                continue
            if isinstance(value, type(module)):
                continue  # a submodule: patched itself
            here = _lookup(ours, name, attr) if private or not attr.startswith("_") else None
            if here is None:
                kept.append(attr)
            else:
                setattr(module, attr, here)
                done.append(attr)
        report[name] = {"redirected": done, "kept": kept}
    return report


def _lookup(ours: list[Any], rai_module: str, attr: str) -> Any:
    leaf = rai_module.rsplit(".", 1)[-1]
    ordered = sorted(ours, key=lambda m: m.__name__.rsplit(".", 1)[-1] != leaf)
    for module in ordered:
        if attr in vars(module):
            return vars(module)[attr]
    return None


@dataclass
class Result:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    xfailed: list[str] = field(default_factory=list)
    private: bool = False
    redirect: dict[str, Any] = field(default_factory=dict)
    output: str = ""

    @property
    def ran(self) -> int:
        return len(self.passed) + len(self.failed)

    @property
    def expected_failures(self) -> dict[str, str]:
        return EXPECTED_FAILURES_PRIVATE if self.private else EXPECTED_FAILURES

    def summary(self, verbose: bool = False) -> str:
        which = "public and private" if self.private else "public"
        lines = [f"rai-toolbox {VERSION} ({', '.join(SUITES)}), {which} names on refimpl.torch:"]
        lines.append(
            f"passed {len(self.passed)}/{self.ran} ({len(self.skipped)} skipped, "
            f"{len(self.xfailed)} xfailed by rai's own marks)"
        )
        known = self.expected_failures
        unexpected = sorted(set(self.failed) - set(known))
        expected = sorted(set(self.failed) & set(known))
        fixed = sorted(set(known) - set(self.failed))
        for title, ids in (("failed", unexpected), ("failed as expected", expected)):
            if ids:
                lines.append(f"{title}:")
                lines += [f"  {i}" + (f"  ({known[i]})" if i in known else "") for i in ids]
        if verbose and self.skipped:
            lines.append("skipped:")
            lines += [f"  {i}" for i in self.skipped]
        if fixed:
            lines.append("expected to fail but did not (update EXPECTED_FAILURES):")
            lines += [f"  {i}" for i in fixed]
        return "\n".join(lines)


def run(
    pytest_args: tuple[str, ...] = (), cache: Path | None = None, private: bool = False
) -> Result:
    """Run the suites in a fresh interpreter; the outcome of every test id."""
    cache = cache or cache_dir()
    tests = sources(cache)
    workdir = cache / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    for suite in SUITES:
        shutil.copytree(tests / suite, workdir / suite)
    (workdir / "conftest.py").write_text(CONFTEST)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    deps = dependencies(cache)
    root = Path(__file__).resolve().parents[2]
    path = [str(root)] + ([str(deps)] if deps else [])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(path + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outcomes.json"
        inner = "--inner-private" if private else "--inner"
        cmd = [sys.executable, "-m", "tests.upstream.rai_toolbox", inner, str(out), "--"]
        cmd += ["-q", "-p", "no:cacheprovider", "--import-mode=importlib", *pytest_args, *SUITES]
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
        if not out.exists():
            raise RuntimeError(f"the inner pytest run failed:\n{proc.stdout}\n{proc.stderr}")
        data = json.loads(out.read_text())
    result = Result(redirect=data["redirect"], output=proc.stdout + proc.stderr, private=private)
    for nodeid, outcome in sorted(data["outcomes"].items()):
        getattr(result, outcome).append(nodeid)
    return result


class _Collector:
    """Pytest plugin: the outcome of every test id (a failure in any phase is a failure;
    a collection error counts as a failed test named by its file)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.outcomes[report.nodeid] = "failed"

    def pytest_runtest_logreport(self, report: Any) -> None:
        previous = self.outcomes.get(report.nodeid)
        if hasattr(report, "wasxfail"):
            self.outcomes[report.nodeid] = "xfailed" if report.skipped else "failed"
        elif report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and previous is None:
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call" and report.passed and previous is None:
            self.outcomes[report.nodeid] = "passed"


def _inner(out: str, pytest_args: list[str], private: bool) -> int:
    import pytest

    report = redirect(private)  # before collection: the test modules import the patched names
    collector = _Collector()
    code = pytest.main(pytest_args, plugins=[collector])
    Path(out).write_text(json.dumps({"outcomes": collector.outcomes, "redirect": report}))
    return int(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--inner"], ["--inner-private"]):
        return _inner(argv[1], argv[3:], private=argv[0] == "--inner-private")
    parser = argparse.ArgumentParser(
        prog="python -m tests.upstream.rai_toolbox", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also the redirected names and pytest's output"
    )
    parser.add_argument("-k", help="only the tests matching this pytest expression")
    parser.add_argument(
        "--private",
        action="store_true",
        help="redirect rai's private helpers too (_LpNormOptimizer, _replace_best, ...)",
    )
    args = parser.parse_args(argv)
    result = run(("-k", args.k) if args.k else (), private=args.private)
    if args.verbose:
        print(result.output)
        for module, names in result.redirect.items():
            print(
                f"{module}: redirected {', '.join(names['redirected']) or '-'}; kept rai's {', '.join(names['kept']) or '-'}"
            )
    print(result.summary(verbose=args.verbose))
    return 0 if set(result.failed) == set(result.expected_failures) else 1


if __name__ == "__main__":
    sys.exit(main())
