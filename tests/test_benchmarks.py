"""The benchmark harness (timing, ratios, report) and a quick smoke run of each benchmark."""

from __future__ import annotations

import time

import pytest

import benchmarks
from benchmarks.harness import Harness, machine_info


def test_harness_times_ratios_and_memory():
    h = Harness(repeats=3, warmup=1, min_sample=0.0)
    blob = []

    def slow():
        time.sleep(0.02)

    def fast():
        time.sleep(0.005)

    def alloc():
        blob.append(bytearray(64 * 2**20))  # 64 MiB, touched by bytearray's zeroing
        blob.clear()

    rows = h.compare("sleep", {"fast": fast, "alloc": alloc}, original=("slowlib", slow))
    assert [r.impl for r in rows] == ["slowlib (original)", "fast", "alloc"]
    ref, f, a = rows
    assert ref.is_original and ref.ratio is None
    assert 0.02 <= ref.min and len(ref.times) == 3
    assert f.ratio is not None and f.ratio < 0.6
    assert a.peak_bytes >= 32 * 2**20, a.peak_bytes
    report = h.report()
    assert "1 (ref)" in report and "slowlib (original)" in report and "x" in report
    assert "ratio = median(ours) / median(original)" in report


def test_without_original_there_is_no_ratio():
    h = Harness(repeats=1, warmup=0)
    (row,) = h.compare("noop", {"ours": lambda: None})
    assert row.ratio is None and "-" in h.report()


def test_machine_info_names_versions():
    info = machine_info()
    assert "cores" in info and "numpy" in info


def test_unknown_benchmark():
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmarks.load("nope")


@pytest.mark.parametrize("name", benchmarks.names())
def test_benchmark_quick_smoke(name):
    h = Harness(repeats=1, warmup=0, quick=True)
    benchmarks.load(name).run(h)
    assert h.rows, f"benchmark {name} measured nothing"
    assert all(r.times and r.min >= 0 for r in h.rows)


def test_fast_calls_are_looped_into_long_samples():
    calls = []
    h = Harness(repeats=2, warmup=0, min_sample=0.01, max_number=50)
    times, _ = h.measure(lambda: calls.append(1))
    # 1 calibration call + 2 samples of max_number calls each + 1 memory call
    assert len(calls) == 1 + 2 * 50 + 1
    assert all(t < 1e-3 for t in times)
