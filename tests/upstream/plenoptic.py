"""plenoptic 2.1.1's own tests of ``Eigendistortion``, run against
``refimpl.torch.Eigendistortion`` with only the imports redirected.

    python -m tests.upstream.plenoptic [pytest arguments]

prints ``passed N/M`` and the ids of the failing tests, and exits 1 when the failures are not
exactly ``EXPECTED_FAILURES``. ``REFIMPL_UPSTREAM=1 python -m pytest tests/upstream`` runs it
as a test (tests/upstream/test_plenoptic_suite.py).

The suite. The test files come from plenoptic's released sdist (``pip download
plenoptic==2.1.1 --no-binary :all: --no-deps``, which holds ``tests/``), cached under
``$REFIMPL_UPSTREAM_CACHE`` (default ``~/.cache/refimpl-upstream``) as
``plenoptic-2.1.1/tests``; the installed plenoptic must be 2.1.1 (its models, ``po.remove_grad``,
``po.plot`` and ``autodiff`` helpers are used as they are). The selected tests:

* ``tests/test_eigendistortion.py``: all (``TestEigendistortionSynthesis``,
  ``TestAutodiffFunctions``);
* ``tests/test_display.py::TestEigendistortionDisplay``: plenoptic's plot helpers on the
  redirected objects.

They run with plenoptic's pytest settings: warnings are errors (``filterwarnings = error``).

The redirection: a pytest plugin, loaded before plenoptic's ``conftest.py``, imports
plenoptic and sets ``plenoptic.Eigendistortion`` (the name the tests use, ``po.Eigendistortion``)
to ``refimpl.torch.Eigendistortion``. plenoptic's internals (``plenoptic._synthesize``, the
plot helpers) are left as they are.

Offline accommodations, both in the plugin (nothing in the test files changes):

* plenoptic's ``conftest.py`` imports ``timm`` and ``torchvision`` and builds a pretrained
  ``timm`` ResNet-50 (downloaded from the Hugging Face hub) for every ``model`` fixture; no
  Eigendistortion test uses it. Where ``timm`` or ``torchvision`` cannot be imported they are
  replaced by stubs that raise when used, and the ``timm_resnet50`` fixture returns None.
* the test images (``fetch_data("test_images.tar.gz")``, from osf.io) are downloaded once
  with pooch; where osf.io is out of reach, the copies plenoptic ships in ``plenoptic.data``
  (einstein, curie, color_wheel, parrot; the tests crop them) are laid out as the archive
  (``256/einstein.pgm``, ``256/curie.pgm``, ``256/color_wheel.jpg``, ``mixed/Parrot.png``)
  under the cache, and the script says so. The Eigendistortion tests use only those four.

CUDA-only tests (``test_map_location``, ``test_to_midsynth``,
``test_raise_on_checks_device_error``) skip on a CPU machine, as in plenoptic's own runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path

VERSION = "2.1.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_FILES = ["tests/test_eigendistortion.py", "tests/test_display.py"]
#: in test_display.py only this class is about Eigendistortion
DISPLAY_CLASS = "TestEigendistortionDisplay"
#: the test images the Eigendistortion tests read: path in the archive -> plenoptic.data file
IMAGES = {
    "256/einstein.pgm": "einstein.pgm",
    "256/curie.pgm": "curie.pgm",
    "256/color_wheel.jpg": "color_wheel.jpg",
    "mixed/Parrot.png": "parrot.png",
}

_T = "tests/test_eigendistortion.py::TestEigendistortionSynthesis::"
_ATTRS = (
    "a file holds plenoptic's fixed set of attributes (the image, the model's output, the "
    "results), not the object's vars(): an extra attribute set on the object, or added by a "
    "subclass, is neither saved nor compared, and the subclass's name is not checked"
)
_SHAPE = (
    "with raise_on_checks=False, an image or model output of another shape is still refused "
    "(plenoptic loads it and replaces the object's image by the saved one, which its model "
    "was not linearized at); only differing values and names become warnings"
)
# test id -> why it fails on purpose (listed in docs/differences.md, eigendistortion section)
EXPECTED_FAILURES: dict[str, str] = {
    _T + "test_load_attributes[init-frontend.LinearNonlinear.nograd]": _ATTRS,
    _T + "test_load_attributes[saved-frontend.LinearNonlinear.nograd]": _ATTRS,
    _T + "test_raise_on_checks_new_attr[naive.Gaussian.nograd]": _ATTRS,
    _T + "test_raise_on_checks_different[shape-frontend.OnOff.nograd]": _SHAPE,
    _T + "test_raise_on_checks_different[value-frontend.OnOff.nograd]": _SHAPE,
}

PLUGIN = '''
"""Redirects plenoptic.Eigendistortion to refimpl.torch.Eigendistortion before plenoptic's
conftest is imported; offline stubs (written by tests/upstream/plenoptic.py)."""
import importlib
import json
import os
import sys
import types

import torch  # before trying torchvision, whose failure would leave torch half-imported


def _stub(name):
    module = types.ModuleType(name)

    def missing(*args, **kwargs):
        raise RuntimeError(f"{name} is a stub of the refimpl harness (not installed or broken)")

    module.__getattr__ = lambda attr: missing
    return module


for _name in ("timm", "torchvision"):
    try:
        importlib.import_module(_name)
    except Exception:  # missing, or torchvision built for another torch
        for _key in [k for k in sys.modules if k == _name or k.startswith(_name + ".")]:
            del sys.modules[_key]
        sys.modules[_name] = _stub(_name)
        if _name == "timm":
            # the timm_resnet50 fixture then returns None: no Eigendistortion test uses it
            sys.modules["timm"].create_model = lambda *args, **kwargs: None
            sys.modules["timm.data"] = _stub("timm.data")
            sys.modules["timm.data.transforms_factory"] = _stub("timm.data.transforms_factory")

import warnings

with warnings.catch_warnings():  # compile-time warnings of a first import (invalid escape
    warnings.simplefilter("ignore", DeprecationWarning)  # sequences in docstrings) are
    warnings.simplefilter("ignore", SyntaxWarning)  # not behaviour under test
    import plenoptic
    import plenoptic.data
    import refimpl.torch

_IMAGES = os.environ["REFIMPL_PLENOPTIC_IMAGES"]
_fetch = plenoptic.data.fetch_data


def _fetch_data(dataset_name):
    if dataset_name == "test_images.tar.gz":
        from pathlib import Path

        return Path(_IMAGES)
    return _fetch(dataset_name)


plenoptic.data.fetch_data = _fetch_data
plenoptic.Eigendistortion = refimpl.torch.Eigendistortion

DISPLAY_CLASS = %(display)r
_outcomes = {}


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        path = item.nodeid.split("::")[0]
        keep = not path.endswith("test_display.py") or f"::{DISPLAY_CLASS}::" in item.nodeid
        (kept if keep else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session):
    with open(os.environ["REFIMPL_PLENOPTIC_REPORT"], "w") as f:
        json.dump(_outcomes, f, indent=1)
'''

PYTEST_INI = """\
[pytest]
testpaths = tests
doctest_optionflags = NORMALIZE_WHITESPACE NUMBER ELLIPSIS
filterwarnings =
    error
    ignore:Failed to generate report:
"""


def cache_dir() -> Path:
    return Path(
        os.environ.get("REFIMPL_UPSTREAM_CACHE") or Path.home() / ".cache" / "refimpl-upstream"
    )


def _has_tests(root: Path) -> bool:
    return all((root / f).is_file() for f in [*TEST_FILES, "tests/conftest.py"])


def sources() -> Path:
    """plenoptic 2.1.1's sdist, unpacked (downloaded once, then cached)."""
    root = cache_dir() / f"plenoptic-{VERSION}"
    if _has_tests(root):
        return root
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", f"plenoptic=={VERSION}", "--no-binary",
             ":all:", "--no-deps", "-q", "-d", str(tmp / "sdist")],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        sdists = sorted((tmp / "sdist").glob("plenoptic-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise RuntimeError(
                f"plenoptic {VERSION}'s sdist could not be downloaded ({result.stderr[-500:]}); "
                f"put its unpacked sources (with tests/) at {root}"
            )
        with tarfile.open(sdists[0], mode="r:gz") as tar:
            tar.extractall(tmp / "src", filter="data")
        found = tmp / "src" / f"plenoptic-{VERSION}"
        if not _has_tests(found):
            raise RuntimeError(f"plenoptic {VERSION}'s sdist has no {TEST_FILES}")
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(found), root)
    return root


def test_images() -> tuple[Path, bool]:
    """``(folder, downloaded)``: plenoptic's test images from osf.io (pooch's cache), or,
    where that is out of reach, the copies in ``plenoptic.data`` laid out the same way."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "from plenoptic.data import fetch_data; print(fetch_data('test_images.tar.gz'))"],
        capture_output=True, text=True, timeout=None if os.environ.get("CI") else 120,
    )  # fmt: skip
    if probe.returncode == 0:
        folder = Path(probe.stdout.strip().splitlines()[-1])
        if all((folder / f).is_file() for f in IMAGES):
            return folder, True
    import plenoptic.data

    shipped = Path(plenoptic.data.__file__).parent
    folder = cache_dir() / f"plenoptic-{VERSION}-test-images-from-package"
    for target, source in IMAGES.items():
        (folder / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped / source, folder / target)
    return folder, False


def check_plenoptic() -> None:
    try:
        import plenoptic
    except ImportError as exc:
        raise RuntimeError(f"the suite needs plenoptic=={VERSION} installed") from exc
    if plenoptic.__version__ != VERSION:
        raise RuntimeError(
            f"the suite needs plenoptic=={VERSION}, {plenoptic.__version__} is installed"
        )


def run(pytest_args: list[str] | None = None) -> tuple[dict[str, str], bool]:
    """Runs the selected tests in a subprocess: ``({test id: outcome}, images downloaded)``."""
    check_plenoptic()
    root = sources()
    images, downloaded = test_images()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        shutil.copytree(root / "tests", tmp / "tests")
        (tmp / "pytest.ini").write_text(PYTEST_INI)
        (tmp / "refimpl_plenoptic_redirect.py").write_text(
            textwrap.dedent(PLUGIN % dict(display=DISPLAY_CLASS))
        )
        report = tmp / "report.json"
        env = dict(
            os.environ, REFIMPL_PLENOPTIC_REPORT=str(report), REFIMPL_PLENOPTIC_IMAGES=str(images)
        )
        env.setdefault("MPLBACKEND", "agg")
        paths = [str(tmp), str(REPO_ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            "-p", "refimpl_plenoptic_redirect", "-c", str(tmp / "pytest.ini"),
            "--rootdir", str(tmp), *TEST_FILES, *(pytest_args or []),
        ]  # fmt: skip
        result = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        log = cache_dir() / f"plenoptic-{VERSION}-last-run.log"
        log.write_text(result.stdout + result.stderr)
        if not report.is_file():
            raise RuntimeError(f"pytest did not run:\n{result.stdout}\n{result.stderr}")
        return json.loads(report.read_text()), downloaded


def failures(outcomes: dict[str, str]) -> list[str]:
    return sorted(k for k, v in outcomes.items() if v == "failed")


def main(argv: list[str]) -> int:
    outcomes, downloaded = run(argv)
    failed = failures(outcomes)
    counted = [k for k, v in outcomes.items() if v != "skipped"]
    print(
        f"plenoptic {VERSION}'s Eigendistortion tests on refimpl.torch: passed "
        f"{len(counted) - len(failed)}/{len(counted)} ({len(outcomes) - len(counted)} skipped)"
    )
    print(f"pytest's output: {cache_dir() / f'plenoptic-{VERSION}-last-run.log'}")
    if not downloaded:
        print("test images: osf.io out of reach, used the copies shipped in plenoptic.data")
    for test in failed:
        why = EXPECTED_FAILURES.get(test)
        print(f"FAILED {test}" + (f"  (expected: {why})" if why else ""))
    for test in sorted(set(EXPECTED_FAILURES) - set(failed)):
        print(f"expected to fail but passed or did not run: {test}")
    return 0 if set(failed) == set(EXPECTED_FAILURES) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
