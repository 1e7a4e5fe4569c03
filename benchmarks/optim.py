"""One step of every torch optimizer front end of ``refimpl.torch.optim`` that rai-toolbox 0.2.1
also has, side by side with rai_toolbox in the same process (issue 22, item 4).

Problem: a float32 parameter of n = 10^6 and 3*10^7 elements, shaped (64, n / 64): 64 rows
for the classes whose ``param_ndim`` defaults to -1 (one row for those defaulting to None),
started at ``x0`` uniform in [0, 1e-3), with a gradient of distinct magnitudes in [1, 5) and
random signs (no ties at the top-q cut-off, see ``benchmarks.frank_wolfe._tie_free``). Radii
and bounds are chosen so that every projection and clamp acts at every step (the costly case
for the in-place transforms, which skip rows inside their ball). rai_toolbox overwrites
``p.grad``, so every call first copies the gradient back into ``p.grad``, for both.

Timing: the two implementations are timed interleaved. Every repeat builds both parameters
and optimizers afresh (in alternating order, so that neither always gets the memory
allocated second), makes ``--warmup`` untimed steps (at least one) with each, then times
one sample of each, the order alternating; a sample loops the step until it lasts
``min_sample`` (as the harness does). The medians are compared. Goals are judged on wall
time, as everywhere in ``benchmarks``; each goal line adds the ratio of process CPU time
(with one torch thread, the work done; a busy machine does not inflate it) and the load
average. Goals: every front end's step at most 1.1x rai_toolbox's at both sizes;
``L1qFrankWolfe``, ``L1qNormedGradientOptim`` and ``TopQGradientOptimizer`` keep their lead
(below 1.0x: an O(D) selection instead of ``torch.topk`` and a Python list of indices).

After timing, one step from the same start is compared with rai_toolbox bit for bit
(parameter and ``.grad``). Peak memory is measured on one extra step (the harness's rule).
At 3*10^7 elements a tensor is 120 MB: the benchmark holds the gradient and, per
implementation, a parameter and its ``.grad`` (600 MB), plus what a step allocates (rai's
top-q builds a 21-million-entry Python index list: about 1 GB more for those three).

``--quick``: (8, 125) parameters (a smoke run). torch uses its default threads; on a shared
machine ``OMP_NUM_THREADS=1`` keeps oversubscribed thread pools from timing the scheduler.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks.frank_wolfe import _tie_free
from benchmarks.harness import Row

#: radius of the L2 ball: below the rows' norms from the first step on
L2_EPSILON = 0.01
#: radius of the Linf ball and bound of the clamped parameters: below most entries of x0
LINF_EPSILON = 2e-4
#: ratio to rai_toolbox that every front end must stay within
GOAL = 1.1
#: the front ends whose goal is to keep their lead over rai_toolbox (below 1.0x)
LEADERS = ("L1qFrankWolfe", "L1qNormedGradientOptim", "TopQGradientOptimizer")


def _has_rai() -> bool:
    return importlib.util.find_spec("rai_toolbox") is not None


def front_ends(mod: Any) -> dict[str, Callable[[list], Any]]:
    """Every optimizer class of ``rai_toolbox.optim``, built from ``mod`` (ours or rai's)
    with options that make each step do its whole work."""
    chained = functools.partial(
        mod.ClampedParameterOptimizer, clamp_min=-LINF_EPSILON, clamp_max=LINF_EPSILON
    )
    return {
        "SignedGradientOptim": lambda p: mod.SignedGradientOptim(p, lr=0.1),
        "L1NormedGradientOptim": lambda p: mod.L1NormedGradientOptim(p, lr=0.1),
        "L2NormedGradientOptim": lambda p: mod.L2NormedGradientOptim(p, lr=0.1),
        "L2ProjectedOptim": lambda p: mod.L2ProjectedOptim(p, epsilon=L2_EPSILON, lr=0.1),
        "LinfProjectedOptim": lambda p: mod.LinfProjectedOptim(p, epsilon=LINF_EPSILON, lr=0.1),
        "L1qNormedGradientOptim": lambda p: mod.L1qNormedGradientOptim(p, q=0.3, lr=0.1),
        "TopQGradientOptimizer": lambda p: mod.TopQGradientOptimizer(p, q=0.3, lr=0.1),
        "ClampedGradientOptimizer": lambda p: mod.ClampedGradientOptimizer(
            p, clamp_min=-2.0, clamp_max=2.0, lr=0.1
        ),
        "ClampedParameterOptimizer": lambda p: mod.ClampedParameterOptimizer(
            p, clamp_min=-LINF_EPSILON, clamp_max=LINF_EPSILON, lr=0.1
        ),
        "ParamTransformingOptimizer": lambda p: mod.ParamTransformingOptimizer(p, lr=0.1),
        "ChainedParamTransformingOptimizer": lambda p: mod.ChainedParamTransformingOptimizer(
            mod.SignedGradientOptim, chained, params=p, lr=0.1
        ),
        "FrankWolfe": lambda p: mod.FrankWolfe(p),
        "L1FrankWolfe": lambda p: mod.L1FrankWolfe(p, epsilon=1.0),
        "L2FrankWolfe": lambda p: mod.L2FrankWolfe(p, epsilon=1.0),
        "LinfFrankWolfe": lambda p: mod.LinfFrankWolfe(p, epsilon=1.0),
        "L1qFrankWolfe": lambda p: mod.L1qFrankWolfe(p, q=0.3, epsilon=1.0),
    }


class _Problem:
    """The start ``x0`` and gradient ``g`` of one size, from a fixed seed."""

    def __init__(self, shape: tuple[int, int]) -> None:
        import torch

        self.shape = shape
        n = shape[0] * shape[1]
        gen = torch.Generator().manual_seed(0)
        self.g = _tie_free(n, gen).reshape(shape)
        self.x0_seed = 1

    def x0(self) -> Any:
        import torch

        gen = torch.Generator().manual_seed(self.x0_seed)
        return torch.rand(self.shape, generator=gen) * 1e-3

    def stepper(self, build: Callable[[list], Any], x0: Any) -> tuple[Callable[[], None], Any]:
        """A zero-argument step (copy ``g`` into ``.grad``, step) and its parameter."""
        x = x0.clone().requires_grad_(True)
        x.grad = self.g.clone()
        opt = build([x])
        g = self.g

        def step() -> None:
            x.grad.copy_(g)
            opt.step()

        return step, x


def _interleaved(
    h: Any, problem: _Problem, builds: dict[str, Callable[[list], Any]]
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Callable[[], None]]]:
    """Wall and process CPU times per call of each implementation (see the module docstring)
    and, for the memory measurement, the last steppers."""
    labels = list(builds)
    wall: dict[str, list[float]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    numbers: dict[str, int] = {}
    steppers: dict[str, Callable[[], None]] = {}
    for r in range(h.repeats):
        order = labels if r % 2 == 0 else labels[::-1]
        steppers.clear()
        gc.collect()
        x0 = problem.x0()
        for label in order:
            steppers[label] = problem.stepper(builds[label], x0)[0]
        del x0
        for label in order:
            for _ in range(max(1, h.warmup)):
                steppers[label]()
            if label not in numbers:
                numbers[label] = h.calls_per_sample(steppers[label])
        for label in order:
            fn, number = steppers[label], numbers[label]
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            wall[label].append((time.perf_counter() - t0) / number)
            cpu[label].append((time.process_time() - c0) / number)
    return wall, cpu, steppers


def _identical(problem: _Problem, builds: dict[str, Callable[[list], Any]]) -> str:
    """One step of each implementation from ``x0``: parameters and ``.grad`` bit for bit."""
    import torch

    out = []
    for build in builds.values():
        step, x = problem.stepper(build, problem.x0())
        step()
        out.append((x.detach(), x.grad))
    (p, g), (q, h) = out
    same = torch.equal(p, q) and torch.equal(g, h)
    return "identical" if same else "DIFFERENT"


def _load() -> str:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, load {load:.2f}, torch threads {torch.get_num_threads()}"


def _goal(name: str, n: int, ratio: float, cpu: float) -> str:
    if name in LEADERS:
        text, met = "keeps its lead over rai_toolbox (< 1.0x)", ratio < 1.0
    else:
        text, met = f"step <= {GOAL}x rai_toolbox", ratio <= GOAL
    return (
        f"goal: {name} {text}, n={n:.0e}: {ratio:.2f}x (CPU time {cpu:.2f}x), "
        f"{'met' if met else 'NOT met'}"
    )


def _compare(h: Any, name: str, problem: _Problem, builds: dict[str, Any]) -> str | None:
    """Time one front end (against rai_toolbox when ``builds`` has it first); add the rows;
    return its goal line (None without rai_toolbox)."""
    n = problem.shape[0] * problem.shape[1]
    wall, cpu, steppers = _interleaved(h, problem, builds)
    title = f"{name} step n={n:.0e}"
    labels = list(builds)
    original = len(labels) == 2
    rows = [
        Row(
            title,
            label,
            wall[label],
            h.peak_memory(steppers[label]),
            is_original=original and i == 0,
        )
        for i, label in enumerate(labels)
    ]
    steppers.clear()
    h.rows.extend(rows)
    if not original:
        return None
    rows[1].ratio = rows[1].median / rows[0].median
    cpu_ratio = statistics.median(cpu[labels[1]]) / max(statistics.median(cpu[labels[0]]), 1e-12)
    h.printer(f"  {title}: one step vs rai_toolbox -> {_identical(problem, builds)}")
    return _goal(name, n, rows[1].ratio, cpu_ratio)


def run(h: Any) -> None:
    import refimpl.torch.optim as ours

    theirs = None
    if _has_rai():
        import rai_toolbox.optim as rai

        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        theirs = front_ends(rai)
    else:
        h.printer("rai_toolbox is not installed: refimpl.torch.optim alone, no ratios or goals")
    mine = front_ends(ours)
    shapes = ((8, 125),) if h.quick else ((64, 15_625), (64, 468_750))
    goals = []
    for shape in shapes:
        problem = _Problem(shape)
        for name, build in mine.items():
            builds = {} if theirs is None else {"rai_toolbox (original)": theirs[name]}
            builds["refimpl.torch.optim"] = build
            goals.append(_compare(h, name, problem, builds))
        del problem
        gc.collect()
    if theirs is not None:
        h.printer(f"goals ({_load()}; judged on wall time, medians of interleaved repeats):")
        for line in goals:
            h.printer("  " + line)
