"""The two command lines (python -m conformance, python -m benchmarks) refuse bad arguments
up front: exit code 2 and a usage message naming the argument and the valid choices."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main as bench_main
from benchmarks.harness import Harness
from conformance import Case, exact
from conformance.runner import main

SRC = "synthetic (tests/test_cli.py)"


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
