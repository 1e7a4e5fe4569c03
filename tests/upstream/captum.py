"""captum 0.9.0's own tests of Saliency, InputXGradient, IntegratedGradients and NoiseTunnel,
run against ``refimpl.torch``'s front ends with only the imports redirected.

    python -m tests.upstream.captum [--reference] [pytest arguments]

prints ``passed N/M`` and the ids of the failing tests, and exits 1 when the failures are not
exactly ``EXPECTED_FAILURES`` (``--reference``: the same tests on captum's own classes). ``REFIMPL_UPSTREAM=1 python -m pytest tests/upstream`` runs it
as a test (tests/upstream/test_captum_suite.py).

The suite. captum's tests import the installed package's helpers (``captum.testing``), so
the installed captum must be 0.9.0; the test files come from captum's sources at the release,
cached under ``$REFIMPL_UPSTREAM_CACHE`` (default ``~/.cache/refimpl-upstream``) as
``captum-0.9.0/tests``. They are taken from the first of: that cache; a checkout (folder) or
archive (``.tar.gz``) of the repository at tag ``v0.9.0`` named by
``$REFIMPL_CAPTUM_SOURCE``; the sdist from PyPI (``pip download captum==0.9.0 --no-binary
:all:``, used when it holds ``tests/``: the 0.9.0 sdist does not); the GitHub archive of the
tag. Where none is reachable, put the repository's ``tests/`` folder in the cache by hand.
The selected files:

* ``tests/attr/test_saliency.py``, ``test_input_x_gradient.py``,
  ``test_integrated_gradients_basic.py``, ``test_integrated_gradients_classification.py``:
  the four classes' own files (NoiseTunnel is tested there, around each method), all tests;
* ``tests/attr/test_targets.py``, ``test_hook_removal.py``: tests generated from captum's
  ``test_config`` for every method; kept are those of Saliency, InputXGradient,
  IntegratedGradients and of NoiseTunnel around any method (captum's own DeepLift, LRP, ...
  wrapped by this project's NoiseTunnel), the others test nothing of this project; and the
  two written tests of test_targets.py (a missing target, a tuple target for a vector
  output), on IntegratedGradients.

Counts (captum 0.9.0 installed; GitHub out of reach, so the test files came from the newest
stored copy of the repository, commit faac0877 of 2025-10-02): 144 tests, all passing on
captum itself; on the front ends 126/144 before ``attribute_future``,
``compute_convergence_delta`` and the TargetError type, 144/144 after.

(``test_jit.py`` and ``test_data_parallel.py`` generate their tests only where CUDA is
available; other files use the four classes as references for other methods.)

The redirection: a pytest plugin, loaded before collection, imports ``captum.attr`` (so
captum's own layer and neuron methods keep captum's classes) and then replaces the four names
in ``captum.attr`` and in the modules the tests import them from
(``captum.attr._core.saliency`` ...) by ``refimpl.torch``'s classes; captum's generated-test
config is imported after that, so it holds them too.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import urllib.request
from pathlib import Path

VERSION = "0.9.0"
ARCHIVE_URL = f"https://github.com/pytorch/captum/archive/refs/tags/v{VERSION}.tar.gz"
REPO_ROOT = Path(__file__).resolve().parents[2]

TEST_FILES = [
    "tests/attr/test_saliency.py",
    "tests/attr/test_input_x_gradient.py",
    "tests/attr/test_integrated_gradients_basic.py",
    "tests/attr/test_integrated_gradients_classification.py",
    "tests/attr/test_targets.py",
    "tests/attr/test_hook_removal.py",
]
# generated tests (test_targets, test_hook_removal) kept: those whose name ends with one of
GENERATED_FILES = ("test_targets.py", "test_hook_removal.py")
GENERATED_PREFIXES = ("test_target_", "test_hook_removal_")
KEPT_SUFFIXES = ("_Saliency", "_InputXGradient", "_IntegratedGradients", "NoiseTunnel")

LAST_OUTPUT = ""  # pytest's output of the latest run

# test id -> why it fails on purpose (listed in docs/differences.md, noise tunnel section)
EXPECTED_FAILURES: dict[str, str] = {}

PLUGIN = '''
"""Redirects captum.attr's Saliency, InputXGradient, IntegratedGradients and NoiseTunnel to
refimpl.torch's classes before collection (written by tests/upstream/captum.py)."""
import importlib
import json
import os
import sys

import captum.attr  # captum's own classes load first: its layer/neuron methods keep them
import refimpl.torch as _front

MODULES = {
    "Saliency": "captum.attr._core.saliency",
    "InputXGradient": "captum.attr._core.input_x_gradient",
    "IntegratedGradients": "captum.attr._core.integrated_gradients",
    "NoiseTunnel": "captum.attr._core.noise_tunnel",
}
assert "captum.testing.attr.helpers.test_config" not in sys.modules, "imported too early"
if not os.environ.get("REFIMPL_CAPTUM_REFERENCE"):  # the reference run keeps captum's
    for _name, _module in MODULES.items():
        setattr(importlib.import_module(_module), _name, getattr(_front, _name))
        setattr(captum.attr, _name, getattr(_front, _name))

KEPT_SUFFIXES = %(kept)r
GENERATED_FILES = %(generated)r
GENERATED_PREFIXES = %(prefixes)r
_outcomes = {}


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        name = item.nodeid.split("::")[-1]
        generated = item.nodeid.split("::")[0].endswith(GENERATED_FILES) and name.startswith(
            GENERATED_PREFIXES
        )
        (dropped if generated and not name.endswith(KEPT_SUFFIXES) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session):
    with open(os.environ["REFIMPL_CAPTUM_REPORT"], "w") as f:
        json.dump(_outcomes, f, indent=1)
'''


def cache_dir() -> Path:
    return Path(
        os.environ.get("REFIMPL_UPSTREAM_CACHE") or Path.home() / ".cache" / "refimpl-upstream"
    )


def _has_tests(root: Path) -> bool:
    return all((root / f).is_file() for f in TEST_FILES)


def _extract(data: bytes, dest: Path) -> Path | None:
    """Unpacks a ``.tar.gz`` archive of captum's sources; its top folder if it has the tests."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    for top in dest.iterdir():
        if _has_tests(top):
            return top
    return None


def _from_pypi(tmp: Path) -> Path | None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"captum=={VERSION}", "--no-binary", ":all:",
         "--no-deps", "--no-build-isolation", "-q", "-d", str(tmp / "sdist")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    for sdist in (tmp / "sdist").glob("*.tar.gz"):
        return _extract(sdist.read_bytes(), tmp / "pypi")
    return None


def _from_github(tmp: Path) -> Path | None:
    try:
        with urllib.request.urlopen(ARCHIVE_URL, timeout=60) as response:
            data = response.read()
    except OSError:
        return None
    return _extract(data, tmp / "github")


def _from_local(tmp: Path) -> Path | None:
    """``$REFIMPL_CAPTUM_SOURCE``: a checkout of the repository at v0.9.0, or its archive."""
    source = os.environ.get("REFIMPL_CAPTUM_SOURCE")
    if not source:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        if not _has_tests(path):
            raise RuntimeError(f"$REFIMPL_CAPTUM_SOURCE={path} has no {TEST_FILES[0]}")
        shutil.copytree(path / "tests", tmp / "local" / "tests")
        return tmp / "local"
    return _extract(path.read_bytes(), tmp / "local")


def sources() -> Path:
    """captum 0.9.0's source tree with its tests (downloaded once, then cached)."""
    root = cache_dir() / f"captum-{VERSION}"
    if _has_tests(root):
        return root
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        found = _from_local(tmp) or _from_pypi(tmp) or _from_github(tmp)
        if found is None:
            raise RuntimeError(
                f"captum {VERSION}'s tests could not be downloaded: its sdist on PyPI has no "
                f"tests/ and {ARCHIVE_URL} is out of reach. Copy the repository at tag "
                f"v{VERSION} (at least its tests/ folder) to {root}, or name it (a folder or a "
                "tar.gz) in $REFIMPL_CAPTUM_SOURCE."
            )
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(found), root)
    return root


def check_captum() -> None:
    try:
        import captum
    except ImportError as exc:
        raise RuntimeError(f"the suite needs captum=={VERSION} installed") from exc
    if captum.__version__ != VERSION:
        raise RuntimeError(f"the suite needs captum=={VERSION}, {captum.__version__} is installed")


def run(pytest_args: list[str] | None = None, *, reference: bool = False) -> dict[str, str]:
    """Runs the selected tests in a subprocess; ``{test id: outcome}``. ``reference``: on
    captum's own classes (no redirection), to count the suite on captum itself."""
    check_captum()
    root = sources()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        kept, generated, prefixes = KEPT_SUFFIXES, GENERATED_FILES, GENERATED_PREFIXES
        (tmp / "refimpl_captum_redirect.py").write_text(textwrap.dedent(PLUGIN % locals()))
        report = tmp / "report.json"
        env = dict(os.environ, REFIMPL_CAPTUM_REPORT=str(report))
        env.pop("REFIMPL_CAPTUM_REFERENCE", None)
        if reference:
            env["REFIMPL_CAPTUM_REFERENCE"] = "1"
        paths = [str(tmp), str(REPO_ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-p", "refimpl_captum_redirect", "-W", "ignore", "-rf", "--rootdir", str(root),
            *TEST_FILES, *(pytest_args or []),
        ]  # fmt: skip
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        global LAST_OUTPUT
        LAST_OUTPUT = result.stdout
        if not report.is_file():
            raise RuntimeError(f"pytest did not run:\n{result.stdout}\n{result.stderr}")
        return json.loads(report.read_text())


def failures(outcomes: dict[str, str]) -> list[str]:
    return sorted(k for k, v in outcomes.items() if v == "failed")


def main(argv: list[str]) -> int:
    reference = "--reference" in argv
    argv = [a for a in argv if a != "--reference"]
    outcomes = run(argv, reference=reference)
    if reference:
        ran = [k for k, v in outcomes.items() if v != "skipped"]
        bad = failures(outcomes)
        print(f"captum {VERSION}'s tests on captum itself: passed {len(ran) - len(bad)}/{len(ran)}")
        for test in bad:
            print(f"FAILED {test}")
        return 1 if bad else 0
    failed = failures(outcomes)
    counted = [k for k, v in outcomes.items() if v != "skipped"]
    print(f"captum {VERSION}'s tests on refimpl.torch: passed {len(counted) - len(failed)}/"
          f"{len(counted)} ({len(outcomes) - len(counted)} skipped)")  # fmt: skip
    for test in failed:
        print(f"FAILED {test}" + (f"  (expected: {EXPECTED_FAILURES[test]})"
                                  if test in EXPECTED_FAILURES else ""))  # fmt: skip
    if failed:  # pytest's one-line reasons
        print("\n".join(line for line in LAST_OUTPUT.splitlines() if line.startswith("FAILED")))
    missing = sorted(set(EXPECTED_FAILURES) - set(failed))
    for test in missing:
        print(f"expected to fail but passed or did not run: {test}")
    return 0 if set(failed) == set(EXPECTED_FAILURES) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
