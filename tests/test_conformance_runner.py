"""The conformance runner itself, on synthetic cases: statuses, table, exit code, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance import Case, SkipCase, erratum, exact, statistical, tolerance
from conformance.registry import Check, filter_cases
from conformance.runner import main, run_one
from conformance.targets import RefimplTarget

SRC = "synthetic (tests/test_conformance_runner.py)"


def _ok(ctx):
    ctx.assert_close(ctx.asarray([1.0, 2.0], dtype="float64") * 2, [2.0, 4.0])


def _wrong(ctx):
    ctx.assert_close(ctx.asarray([1.0, 2.0], dtype="float64"), [1.0, 2.5])


def _crash(ctx):
    raise ZeroDivisionError("boom")


def _skip(ctx):
    ctx.skip("not applicable here")


def _close(ctx):
    ctx.assert_close(ctx.asarray([1.0 + 1e-9], dtype="float64"), [1.0])


def cases(*extra):
    base = [
        Case("syn.ok", SRC, "arithmetic", exact(), _ok),
        Case("syn.close", SRC, "arithmetic", tolerance(rtol=1e-6), _close),
        Case("syn.skip", SRC, "arithmetic", exact(), _skip),
        Case("syn.erratum", SRC, "arithmetic", erratum("doc prints 3, library gives 4"), _ok),
        Case("syn.stat", SRC, "arithmetic", statistical(1e-6), _ok),
    ]
    return base + list(extra)


def test_passing_suite_exits_zero(capsys):
    rc = main(["--backend", "numpy,array_api_strict"], cases=cases())
    out = capsys.readouterr().out
    assert rc == 0
    assert out.rstrip().splitlines()[-1] == (
        "10 cells: 8 ran (6 PASS, 2 ERRATUM, 0 FAIL), 2 skipped (2 not supported by the target)"
    )
    assert "ERRATUM" in out and "syn.ok" in out
    header = out.splitlines()[0].split()
    assert header == ["case", "numpy", "array_api_strict"]


@pytest.mark.parametrize("bad", [_wrong, _crash])
def test_a_failing_case_makes_exit_code_one(capsys, bad):
    rc = main(["--backend", "numpy"], cases=cases(Case("syn.bad", SRC, "x", exact(), bad)))
    out = capsys.readouterr().out
    assert rc == 1
    assert out.rstrip().splitlines()[-1] == (
        "6 cells: 5 ran (3 PASS, 1 ERRATUM, 1 FAIL), 1 skipped (1 not supported by the target)"
    )
    assert "FAIL syn.bad [numpy]" in out


def test_failure_message_names_values():
    r = run_one(Case("syn.bad", SRC, "x", exact(), _wrong), RefimplTarget("numpy"))
    assert r.status == "FAIL" and "documented [1.  2.5]" in r.detail
    r = run_one(Case("syn.crash", SRC, "x", exact(), _crash), RefimplTarget("numpy"))
    assert r.status == "FAIL" and r.detail.startswith("ZeroDivisionError: boom")


def test_unavailable_target_is_skipped_with_reason():
    r = run_one(Case("syn.ok", SRC, "x", exact(), _ok), RefimplTarget("cupy", None, "no GPU"))
    assert (r.status, r.detail) == ("SKIP", "no GPU")


def test_exact_check_is_exact():
    r = run_one(Case("syn.close", SRC, "x", exact(), _close), RefimplTarget("numpy"))
    assert r.status == "FAIL"


def test_original_columns_only_for_cases_that_declare_them(capsys):
    def on_original(ctx):
        if not ctx.is_original:
            raise SkipCase("backend side not exercised in this test")

    c = Case("syn.orig", SRC, "x", exact(), on_original, originals=("rai_toolbox",))
    main(["--backend", "numpy,rai_toolbox,captum"], cases=[c, cases()[0]])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["case", "numpy", "rai_toolbox"]  # captum ran nothing: no column
    row = next(line for line in lines if line.startswith("syn.ok"))
    assert row.split() == ["syn.ok", "PASS", "-"]


def test_case_filter_list_and_json(tmp_path, capsys):
    assert [c.id for c in filter_cases(cases(), "syn.s*")] == ["syn.skip", "syn.stat"]
    assert [c.id for c in filter_cases(cases(), "erratum")] == ["syn.erratum"]
    assert main(["--list"], cases=cases()) == 0
    listing = capsys.readouterr().out
    assert "false-failure probability <= 1e-06" in listing and "5 cases" in listing
    path = tmp_path / "out.json"
    assert main(["--backend", "numpy", "--case", "syn.ok", "--json", str(path)], cases=cases()) == 0
    data = json.loads(path.read_text())
    assert data["passed"] == 1 and data["results"][0]["status"] == "PASS"


def test_unknown_backend_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--backend", "tensorflow"], cases=cases())
    assert info.value.code == 2
    assert "unknown backend 'tensorflow'" in capsys.readouterr().err


def test_check_validation():
    with pytest.raises(ValueError, match="false_failure_prob"):
        Check("statistical")
    with pytest.raises(ValueError, match="explanation"):
        Check("erratum")
    with pytest.raises(ValueError, match="unknown check kind"):
        Check("approximately")


def test_cli_lists_registered_cases():
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--list"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.rstrip().splitlines()[-1].endswith("cases")
