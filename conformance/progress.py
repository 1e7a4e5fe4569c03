"""Progress of a run, on stderr: a run of every column takes minutes (README.md, "Set up
and run"), and the table comes only at the end.

On a terminal, a tqdm bar over the cells names the cell that is running (case and column);
elsewhere (CI logs, a pipe, a terminal without a size), one plain line per case once its
cells are done, ``[k/N] CASE: n cells in t s (elapsed T s)``, with the columns that FAILed.
``--quiet`` prints nothing. stdout (the table and the closing line) is never touched.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO


class Progress:
    """Says nothing (``--quiet``); the interface of the reporters. The runner calls
    :meth:`start` once, :meth:`cell` before each cell, :meth:`cell_done` after it,
    :meth:`case_done` after the last cell of each case, and :meth:`close` at the end."""

    def start(self, cells: int, cases: int, targets: int) -> None:
        """The run begins: ``cells`` cells, ``cases`` cases on ``targets`` columns."""

    def cell(self, case: str, target: str) -> None:
        """The cell (case, column label) starts."""

    def cell_done(self, result: Any) -> None:
        """A cell ended with ``result`` (a :class:`conformance.runner.Result`)."""

    def case_done(self, case: str, results: Sequence[Any]) -> None:
        """Every cell of ``case`` ended; ``results`` are its cells."""

    def close(self) -> None:
        """The run ended (also after an exception)."""


class BarProgress(Progress):
    """A tqdm bar over the cells on ``stream``, its postfix the running cell and its
    description the number of FAILs so far; it is removed at the end."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: Any = None
        self.failed = 0

    def start(self, cells: int, cases: int, targets: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=cells,
            desc="conformance",
            unit="cell",
            file=self.stream,
            dynamic_ncols=True,
            leave=False,
        )

    def cell(self, case: str, target: str) -> None:
        self.bar.set_postfix_str(f"{case} [{target}]", refresh=True)

    def cell_done(self, result: Any) -> None:
        if result.status == "FAIL":
            self.failed += 1
            self.bar.set_description(f"conformance ({self.failed} FAIL)", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LineProgress(Progress):
    """One plain line per case on ``stream`` (flushed), for logs that are not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self.t0 = self.case_t0 = 0.0

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, cells: int, cases: int, targets: int) -> None:
        self.total = cells
        self.t0 = self.case_t0 = time.perf_counter()
        self._say(
            f"conformance: {cells} cell{_s(cells)} ({cases} case{_s(cases)} on {targets} "
            f"target{_s(targets)}); a line per case"
        )

    def cell_done(self, result: Any) -> None:
        self.done += 1

    def case_done(self, case: str, results: Sequence[Any]) -> None:
        now = time.perf_counter()
        width = len(str(self.total))
        line = (
            f"[{self.done:>{width}}/{self.total}] {case}: {len(results)} cell{_s(len(results))} "
            f"in {now - self.case_t0:.1f} s (elapsed {now - self.t0:.1f} s)"
        )
        failed = [r.target for r in results if r.status == "FAIL"]
        if failed:
            line += f"; FAIL on {', '.join(failed)}"
        self._say(line)
        self.case_t0 = now


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def reporter(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """The progress reporter for a run: nothing when ``quiet``, a bar when ``stream``
    (default ``sys.stderr``) is a terminal, plain lines otherwise."""
    stream = sys.stderr if stream is None else stream
    if quiet or stream is None:
        return Progress()
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return Progress()
    return BarProgress(stream) if tty and _columns(stream) != 0 else LineProgress(stream)


def _columns(stream: TextIO) -> int | None:
    """The width of the terminal ``stream`` writes to; 0 for a pseudo-terminal without a
    size (``script``, some CI runners), where a bar would print nothing; None if unknown."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # no file descriptor, not a terminal
        return None
