"""Progress of a conformance run on stderr (conformance/progress.py): a tqdm bar over the
cells on a terminal, a plain line per case elsewhere, nothing with --quiet; stdout (the
table and the closing line) is the same in every mode."""

from __future__ import annotations

import io
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conformance import Case, erratum, exact, progress
from conformance.runner import main, run_cases
from conformance.targets import RefimplTarget

SRC = "synthetic (tests/test_conformance_progress.py)"
ROOT = pathlib.Path(__file__).resolve().parents[1]
#: a progress line of a case: ``[k/N] CASE: n cells in t s (elapsed T s)``
LINE = re.compile(r"^\[ *(\d+)/(\d+)\] (\S+): (\d+) cells? in [\d.]+ s \(elapsed [\d.]+ s\)(.*)$")


def _ok(ctx):
    ctx.assert_close(ctx.asarray([1.0], dtype="float64"), [1.0])


def _bad(ctx):
    ctx.assert_close(ctx.asarray([1.0], dtype="float64"), [2.0])


def _skip(ctx):
    ctx.skip("not here")


def cases(fail: bool = False):
    out = [
        Case("950.ok", SRC, "x", exact(), _ok),
        Case("950.skip", SRC, "x", exact(), _skip),
        Case("950.err", SRC, "x", erratum("the page prints 3, the library gives 4"), _ok),
        Case("950.np", SRC, "x", exact(), _ok, backends=("numpy",)),  # one cell
    ]
    if fail:
        out.append(Case("950.bad", SRC, "x", exact(), _bad, backends=("numpy",)))
    return out


ARGV = ["--backend", "numpy,array_api_strict"]


def _stable(out: str) -> str:
    """stdout without the run time (the only thing that differs between two runs)."""
    return re.sub(r" in \d+\.\d s", " in T s", out)


def test_progress_lines_on_stderr_when_it_is_not_a_terminal(capsys):
    assert main(ARGV, cases=cases()) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == "conformance: 7 cells (4 cases on 2 targets); a line per case"
    got = [LINE.match(x) for x in lines[1:]]
    assert all(got), lines
    # one line per case, in order, with its cells; the counts add up to every cell run
    assert [m[3] for m in got] == ["950.ok", "950.skip", "950.err", "950.np"]
    assert [int(m[4]) for m in got] == [2, 2, 2, 1]
    assert [int(m[1]) for m in got] == [2, 4, 6, 7] and {m[2] for m in got} == {"7"}
    assert out.rstrip().splitlines()[-1].startswith("7 cells: 5 ran ")
    assert "conformance:" not in out and not any(LINE.match(x) for x in out.splitlines())


def test_a_progress_line_names_the_columns_that_failed(capsys):
    assert main(ARGV, cases=cases(fail=True)) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("[8/8] 950.bad: 1 cell in ")
    assert err.splitlines()[-1].endswith("; FAIL on numpy")


@pytest.mark.parametrize("flag", ["--quiet", "-q", "--no-progress"])
def test_quiet_prints_nothing_on_stderr_and_the_same_on_stdout(capsys, flag):
    main(ARGV, cases=cases())
    loud = capsys.readouterr()
    main([*ARGV, flag], cases=cases())
    quiet = capsys.readouterr()
    assert loud.err and quiet.err == ""
    assert _stable(quiet.out) == _stable(loud.out)


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (of ``columns`` columns when that is given)."""

    def __init__(self, columns: int | None = None) -> None:
        super().__init__()
        self.columns = columns

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        if self.columns is None:
            raise io.UnsupportedOperation("fileno")
        return 2


def test_a_bar_over_the_cells_on_a_terminal():
    stream = _Terminal()
    reporter = progress.reporter(stream=stream)
    assert type(reporter) is progress.BarProgress
    targets = [(t.label, t) for t in (RefimplTarget("numpy"), RefimplTarget("array_api_strict"))]
    results = run_cases(cases(fail=True), targets, reporter)
    text = stream.getvalue()
    assert "conformance:" in text and "0/8 " in text  # total = the cells that run
    # before each cell its case and column (the postfix); FAILs so far in the description
    shown = re.findall(r"(950\.\w+) \[(\w+)\]", text)
    assert list(dict.fromkeys(shown)) == [(r.case, r.target) for r in results]
    assert "conformance (1 FAIL)" not in text.split("950.bad [numpy]")[0]
    assert text.endswith("\r")  # the bar is removed at the end (leave=False)
    assert reporter.bar is None


def test_a_terminal_without_a_size_gets_lines(monkeypatch):
    monkeypatch.setattr(progress.os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    assert type(progress.reporter(stream=_Terminal(columns=0))) is progress.LineProgress
    monkeypatch.setattr(progress.os, "get_terminal_size", lambda fd: os.terminal_size((80, 24)))
    assert type(progress.reporter(stream=_Terminal(columns=80))) is progress.BarProgress
    assert type(progress.reporter(quiet=True, stream=_Terminal())) is progress.Progress
    assert type(progress.reporter(stream=io.StringIO())) is progress.LineProgress


def test_progress_goes_to_stderr_only(tmp_path):
    """A real run: stdout has the table, the JSON written to /dev/stdout and the closing line,
    and no progress; stderr has a line per case."""
    cmd = [sys.executable, "-m", "conformance", "--backend", "numpy", "--case", "000.init.*"]
    run = dict(cwd=ROOT, capture_output=True, text=True, timeout=300)
    proc = subprocess.run([*cmd, "--json", "/dev/stdout"], **run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    err = proc.stderr.splitlines()
    assert err[0] == "conformance: 5 cells (5 cases on 1 target); a line per case"
    assert len(err) == 6 and all(LINE.match(x) for x in err[1:]), err
    assert not any(LINE.match(x) or x.startswith("conformance:") for x in proc.stdout.splitlines())
    assert proc.stdout.rstrip().splitlines()[-1] == (
        "5 cells: 5 ran (5 PASS, 0 ERRATUM, 0 FAIL), 0 skipped"
    )
    quiet = subprocess.run([*cmd, "--quiet"], **run)
    assert quiet.returncode == 0 and quiet.stderr == ""
