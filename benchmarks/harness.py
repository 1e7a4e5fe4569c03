"""Timing harness: min/median of repeats, peak memory, and the ratio to the original library.

A benchmark module ``benchmarks/<name>.py`` defines ``run(h: Harness)`` and calls
``h.compare(title, {label: fn, ...}, original=(library, fn))`` once per measured problem.
Each ``fn`` is a zero-argument callable doing the work once (it must synchronise with its
device itself). ``h.quick`` asks for small sizes (used by the test suite's smoke run).

Ratios are ``time(ours) / time(original)`` on the median: below 1 means faster than the
documented library. Peak memory is the rise of the process's resident set size above its
level before the call (sampled every millisecond; this sees torch's CPU allocator) or the
traced Python/numpy allocations, whichever is larger, measured on one extra call; or
``torch.cuda``'s peak allocation when a CUDA device is in use.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the peak, which only grows
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakSampler:
    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.base = _rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def rise(self) -> int:
        return max(0, self.peak - self.base)


@dataclass
class Row:
    benchmark: str
    impl: str
    times: list[float]
    peak_bytes: int
    is_original: bool = False
    ratio: float | None = None
    note: str = ""

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


@dataclass
class Harness:
    repeats: int = 5
    warmup: int = 2
    #: a sample loops a fast call until it lasts this long (seconds) ...
    min_sample: float = 0.05
    #: ... but at most this many times
    max_number: int = 1000
    quick: bool = False
    #: busy processes running during the benchmark (``--load N``), for contention figures
    load: int = 0
    rows: list[Row] = field(default_factory=list)
    printer: Callable[[str], None] = print

    def __post_init__(self) -> None:
        for name, low in (("repeats", 1), ("warmup", 0), ("max_number", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if not (isinstance(self.min_sample, int | float) and self.min_sample >= 0):
            raise ValueError(
                f"min_sample must be a number of seconds >= 0, got {self.min_sample!r}"
            )

    def measure(self, fn: Callable[[], Any]) -> tuple[list[float], int]:
        """Per-call times of ``repeats`` samples after ``warmup`` calls, then the peak memory
        of one more call (measured apart: tracing allocations slows the call down).

        Like ``timeit``, a sample of a fast call loops it ``number`` times so that a sample
        lasts at least ``min_sample`` seconds, and reports the mean per call: sub-millisecond
        timings are then not dominated by timer and scheduler noise.
        """
        for _ in range(self.warmup):
            fn()
        number = self.calls_per_sample(fn)
        times = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            _cuda_sync()
            times.append((time.perf_counter() - t0) / number)
        return times, self.peak_memory(fn)

    def calls_per_sample(self, fn: Callable[[], Any]) -> int:
        """How many calls of ``fn`` a timed sample makes so that it lasts at least
        ``min_sample`` seconds (from one timed call; at most ``max_number``)."""
        t0 = time.perf_counter()
        fn()
        _cuda_sync()
        once = time.perf_counter() - t0
        return max(1, min(self.max_number, math.ceil(self.min_sample / max(once, 1e-9))))

    @staticmethod
    def peak_memory(fn: Callable[[], Any]) -> int:
        """Peak bytes of one call: the larger of the traced Python/numpy allocations and the
        rise of the resident set size (which also sees torch's CPU allocator); on CUDA,
        torch's peak device allocation."""
        if _cuda_reset():
            fn()
            return _cuda_peak()
        gc.collect()
        _malloc_trim()
        tracemalloc.start()
        try:
            with _PeakSampler() as sampler:
                fn()
            traced = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return max(traced, sampler.rise)

    def compare(
        self,
        title: str,
        ours: dict[str, Callable[[], Any]],
        original: tuple[str, Callable[[], Any]] | None = None,
        note: str = "",
    ) -> list[Row]:
        """Time each of ``ours`` and, when given, the original library's ``fn``."""
        new: list[Row] = []
        ref: Row | None = None
        if original is not None:
            lib, fn = original
            times, peak = self.measure(fn)
            ref = Row(title, f"{lib} (original)", times, peak, is_original=True, note=note)
        for label, fn in ours.items():
            times, peak = self.measure(fn)
            row = Row(title, label, times, peak, note=note)
            if ref is not None:
                row.ratio = row.median / ref.median
            new.append(row)
        if ref is not None:
            new.insert(0, ref)
        self.rows.extend(new)
        return new

    def report(self) -> str:
        head = ("benchmark", "implementation", "min ms", "median ms", "peak MiB", "vs original")
        body = []
        for r in self.rows:
            ratio = "1 (ref)" if r.is_original else ("-" if r.ratio is None else f"{r.ratio:.2f}x")
            body.append(
                (
                    r.benchmark,
                    r.impl,
                    f"{r.min * 1e3:.2f}",
                    f"{r.median * 1e3:.2f}",
                    f"{r.peak_bytes / 2**20:.1f}",
                    ratio,
                )
            )
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in body]
        lines.append(
            f"(per-call times, min and median of {self.repeats} samples after {self.warmup} "
            "warm-up calls; a sample of a fast call loops it for >= "
            f"{self.min_sample * 1e3:.0f} ms; "
            "ratio = median(ours) / median(original), below 1 is faster)"
        )
        return "\n".join(lines)


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS (glibc), so the RSS baseline is honest."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cuda_sync() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def _cuda_reset() -> bool:
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return False
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return True


def _cuda_peak() -> int:
    import torch

    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


@contextlib.contextmanager
def busy_processes(n: int):
    """``n`` processes spinning on a core each for the duration of the block (``--load N``:
    the contention of a shared machine, made repeatable), stopped at the end."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(0, n))]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def machine_info() -> str:
    import importlib.metadata as md

    lines = [
        f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}",
    ]
    versions = []
    for pkg in (
        "numpy",
        "scipy",
        "torch",
        "array-api-compat",
        "rai-toolbox",
        "captum",
        "plenoptic",
    ):
        try:
            versions.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    lines.append("versions: " + ", ".join(versions))
    try:
        import torch

        lines.append(f"torch threads: {torch.get_num_threads()}, CUDA: {torch.cuda.is_available()}")
    except ImportError:
        pass
    return "\n".join(lines)
