"""The two command lines (python -m conformance, python -m benchmarks) refuse bad arguments
up front: exit code 2 and a usage message naming the argument and the valid choices."""

from __future__ import annotations

import importlib
import itertools
import os
import pathlib
import subprocess
import sys

import pytest

from benchmarks.__main__ import main as bench_main
from benchmarks.harness import Harness
from conformance import Case, exact, targets
from conformance.runner import main

SRC = "synthetic (tests/test_cli.py)"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ok(ctx):
    ctx.assert_close(ctx.asarray([1.0], dtype="float64"), [1.0])


def _never(ctx):  # pragma: no cover - must not run
    raise AssertionError("a case ran although the arguments were refused")


def cases(run=_ok):
    return [
        Case("syn.one", SRC, "x", exact(), run),
        Case("syn.two", SRC, "x", exact(), run, backends=("numpy",)),
        Case("syn.orig", SRC, "x", exact(), run, originals=("rai_toolbox",)),
    ]


def usage_error(capsys, argv, run=_never):
    with pytest.raises(SystemExit) as info:
        main(argv, cases=cases(run))
    assert info.value.code == 2
    return capsys.readouterr().err


def test_json_path_is_checked_before_running(tmp_path, capsys):
    missing = tmp_path / "missing_dir" / "out.json"
    err = usage_error(capsys, ["--backend", "numpy", "--json", str(missing)])
    assert "--json" in err and "missing_dir" in err
    err = usage_error(capsys, ["--backend", "numpy", "--json", str(tmp_path)])  # a directory
    assert "--json" in err


@pytest.mark.parametrize("pattern", ["nomatch*", "syn.zzz", ","])
def test_a_case_filter_that_selects_nothing_is_an_error(capsys, pattern):
    err = usage_error(capsys, ["--backend", "numpy", "--case", pattern])
    assert "--case" in err and "syn.one" in err and "syn.two" in err  # the valid names


@pytest.mark.parametrize("value", ["", ",", " "])
def test_an_empty_backend_selection_is_an_error(capsys, value):
    err = usage_error(capsys, ["--backend", value])
    assert "--backend" in err and "numpy" in err and "rai_toolbox" in err


def test_cases_that_apply_to_no_selected_column_are_an_error(capsys):
    err = usage_error(capsys, ["--backend", "captum", "--case", "syn.*"])
    assert "--case" in err or "--backend" in err


def test_list_honours_backend(capsys):
    assert main(["--list", "--backend", "array_api_strict"], cases=cases()) == 0
    out = capsys.readouterr().out
    assert "syn.one" in out and "syn.orig" in out and "syn.two" not in out  # numpy only
    assert out.rstrip().splitlines()[-1] == "2 cases"
    assert main(["--list", "--backend", "rai_toolbox"], cases=cases()) == 0
    out = capsys.readouterr().out
    assert "syn.orig" in out and "syn.one" not in out
    assert out.rstrip().splitlines()[-1] == "1 case"
    err = usage_error(capsys, ["--list", "--backend", "tensorflow"])
    assert "unknown backend 'tensorflow'" in err


# -- the output files (--json, --report): checked, and tried, before anything runs
@pytest.mark.parametrize("flag", ["--json", "--report"])
def test_an_empty_output_path_is_an_error(capsys, flag):
    err = usage_error(capsys, ["--backend", "numpy", flag, ""])
    assert f"{flag} ''" in err and "names no file" in err


def test_json_and_report_to_the_same_file_is_an_error(tmp_path, capsys):
    out = tmp_path / "out.md"
    err = usage_error(capsys, ["--backend", "numpy", "--json", str(out), "--report", str(out)])
    assert "--json" in err and "--report" in err and "same file" in err
    (tmp_path / "link.md").symlink_to(out)  # another spelling of the same file
    other = str(tmp_path / "sub" / ".." / "link.md")
    (tmp_path / "sub").mkdir()
    err = usage_error(capsys, ["--backend", "numpy", "--json", str(out), "--report", other])
    assert "same file" in err
    assert not out.exists()


@pytest.mark.parametrize("flag, name", [("--json", "x.json"), ("--report", "x.md")])
def test_list_with_an_output_file_is_an_error(tmp_path, capsys, flag, name):
    err = usage_error(capsys, ["--list", "--backend", "numpy", flag, str(tmp_path / name)])
    assert "--list" in err and flag in err
    assert not (tmp_path / name).exists()


UNWRITABLE = [
    ("--json", "/dev/full"),  # opens, but every write fails (ENOSPC)
    ("--json", "/proc/conformance.json"),  # the directory is writable by root, the file is not
    ("--report", "/proc/conformance.md"),
    ("--json", "/sys/conformance.json"),
    ("--report", "/sys/conformance.md"),
]


@pytest.mark.parametrize("flag, path", UNWRITABLE)
def test_an_unwritable_output_path_is_an_error_before_running(capsys, flag, path):
    if not os.path.exists(os.path.dirname(path)) or sys.platform != "linux":
        pytest.skip(f"{path} is a Linux path")
    err = usage_error(capsys, ["--backend", "numpy", flag, path])
    assert f"{flag} {path!r}" in err and "cannot be written" in err


def test_the_output_check_leaves_no_file_behind(tmp_path, capsys):
    new, old = tmp_path / "new.json", tmp_path / "old.md"
    old.write_text("kept")
    argv = ["--backend", "numpy", "--json", str(new), "--report", str(old)]
    usage_error(capsys, [*argv, "--case", "nomatch*"])  # refused after the output check
    assert not new.exists() and old.read_text() == "kept"
    assert main(argv, cases=cases()) == 0
    assert new.exists() and old.read_text().startswith("# Conformance report")


# -- plugins: whatever a plugin does wrong is a usage error naming it (exit 2)
_COUNTER = itertools.count()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``plugin(source)`` writes a plugin module and returns its name; the module and the
    targets it registers are forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(targets.base, "_FACTORIES", {})
    monkeypatch.setattr(targets.base, "_ORIGINS", {}, raising=False)
    names = []

    def make(source: str) -> str:
        name = f"syn_conformance_plugin_{next(_COUNTER)}"
        (tmp_path / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "source",
    [
        "raise SystemExit(0)",
        "import sys\nsys.exit()",
        "raise SystemExit('bye')",
        "raise StopIteration",
    ],
)
def test_a_plugin_that_exits_on_import_is_an_error(capsys, plugin, source):
    name = plugin(source)
    err = usage_error(capsys, ["--backend", "numpy", "--plugin", name])
    assert f"--plugin {name!r}" in err and "cannot be imported" in err


def test_an_entry_point_that_exits_on_import_is_an_error(capsys, monkeypatch):
    import importlib.metadata

    class EntryPoint:
        name, value = "quitter", "quitter.conformance"

        def load(self):
            raise SystemExit(0)

    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group: [EntryPoint()] if group == "refimpl.conformance" else [],
    )
    err = usage_error(capsys, ["--backend", "numpy"])
    assert "entry point 'quitter'" in err and "SystemExit" in err


_HEAD = "from conformance import RefimplTarget, Target, register_target\n"
BROKEN_TARGETS = {
    "factory raises": "register_target('broken', lambda: 1 / 0)",
    "factory returns a non-Target": "register_target('broken', lambda: 42)",
    "unavailable raises": (
        "class T(Target):\n    def unavailable(self):\n        raise RuntimeError('probe')\n"
        "register_target('broken', T)"
    ),
    "unavailable returns a non-string": (
        "class T(Target):\n    def unavailable(self):\n        return 3\n"
        "register_target('broken', T)"
    ),
}


@pytest.mark.parametrize("source", BROKEN_TARGETS.values(), ids=BROKEN_TARGETS)
def test_a_broken_plugin_target_is_an_error_naming_the_plugin(capsys, plugin, source):
    name = plugin(_HEAD + source)
    for argv in (["--target", "broken"], ["--target", "numpy,broken"], []):  # [] selects all
        err = usage_error(capsys, ["--plugin", name, *argv])
        assert "target 'broken'" in err and f"--plugin {name!r}" in err
    err = usage_error(capsys, ["--plugin", name, "--list", "--target", "broken"])
    assert "target 'broken'" in err


@pytest.mark.parametrize("source", BROKEN_TARGETS.values(), ids=BROKEN_TARGETS)
def test_a_broken_plugin_target_that_is_not_selected_does_not_run(capsys, plugin, source):
    """A registered target is built only when selected: the others cannot break a run."""
    name = plugin(_HEAD + source)
    assert main(["--plugin", name, "--backend", "numpy"], cases=cases()) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("\n3 cells: 3 ran (3 PASS, 0 ERRATUM, 0 FAIL), 0 skipped")


def test_a_plugin_case_that_clashes_with_a_builtin_case_is_an_error(tmp_path):
    (tmp_path / "syn_clashing_plugin.py").write_text(
        "from conformance import Case, exact, register\n"
        "register(Case('000.init.l2.rows', 'mine', 'x', exact(), lambda ctx: None))\n"
    )
    cmd = [sys.executable, "-m", "conformance", "--plugin", "syn_clashing_plugin"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    argv = [*cmd, "--backend", "numpy", "--case", "000.init.l2.rows"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--plugin 'syn_clashing_plugin'" in proc.stderr
    assert "'000.init.l2.rows' is already registered" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    "argv, words",
    [
        (["samplers", "--repeats", "0"], "--repeats"),
        (["samplers", "--repeats", "-2"], "--repeats"),
        (["samplers", "--warmup", "-3"], "--warmup"),
    ],
)
def test_benchmark_counts_are_checked(capsys, argv, words):
    with pytest.raises(SystemExit) as info:
        bench_main(argv)
    assert info.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    "kw, words",
    [(dict(repeats=0), "repeats"), (dict(warmup=-1), "warmup"), (dict(repeats=2.5), "repeats")],
)
def test_harness_checks_its_counts(kw, words):
    with pytest.raises((ValueError, TypeError), match=words):
        Harness(**kw)
