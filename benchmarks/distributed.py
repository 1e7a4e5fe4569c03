"""Beyond one machine (issue 21): what a dask cluster of worker processes costs and gives.

* cluster start-up: ``refimpl.distributed.local_cluster(2)`` until a first task has
  answered;
* overhead per task: 1,000 tiny tasks through ``refimpl.parallel.run_tasks`` on the
  cluster's executor, total / 1,000 (goal: under 20 ms);
* the 256x100 arg-max with Gumbel noise, N = 10^5, sigma 0.5, ``rng=SeedSequence(0)``
  (``refimpl.perturbed.argmax_one_hot``, numpy float32), forward value: in process
  (``executor=None``), on 1 worker and on 2 workers, and on 2 workers with dask's default
  ``MALLOC_TRIM_THRESHOLD_=65536``: wall time, speed-up and efficiency (speed-up / workers)
  against in process, CPU time inside the tasks (``time.process_time`` measured in the
  worker around each task, sent back with its result) against wall time x workers, and
  whether the result is bit-identical to in process. Goals: bit-identical always; 2
  workers at least 1.6x faster than in process on an otherwise idle 2-core machine.

Every measure runs in three interleaved rounds (in process, 1 worker, 2 workers, ... in
turn) and the medians are reported; the load average is printed with the goals, since a
busy machine cannot give two idle cores. ``--quick``: an 8x10 arg-max with N = 2,000, 50
tiny tasks, one round, no malloc comparison (a smoke run).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib.util
import inspect
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.harness import Row

SIGMA = 0.5
TRIM_DEFAULT = "dask's MALLOC_TRIM_THRESHOLD_=65536"


# -- CPU time inside tasks ---------------------------------------------------------------------
def _timed_call(fn: Any, *args: Any) -> tuple[Any, float, float]:
    """``fn(*args)`` and the CPU seconds spent meanwhile by this process (all its threads:
    the worker's own, such as dask's profiler and heartbeats, included) and by the thread
    running it alone (runs on the worker)."""
    p0, t0 = time.process_time(), time.thread_time()
    result = fn(*args)
    return result, time.process_time() - p0, time.thread_time() - t0


class TimedExecutor(cf.Executor):
    """An executor running every task through ``inner`` and adding up the CPU time spent
    during the tasks, as measured where they ran: by the worker processes (``cpu``) and by
    the tasks' threads alone (``thread_cpu``)."""

    def __init__(self, inner: cf.Executor) -> None:
        self.inner, self.cpu, self.thread_cpu = inner, 0.0, 0.0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future:
        assert not kwargs
        outer: cf.Future = cf.Future()
        inner = self.inner.submit(_timed_call, fn, *args)

        def done(future: cf.Future) -> None:
            if future.cancelled():
                outer.cancel()
            elif future.exception() is not None:
                outer.set_exception(future.exception())
            else:
                result, cpu, thread_cpu = future.result()
                self.cpu += cpu
                self.thread_cpu += thread_cpu
                outer.set_result(result)

        inner.add_done_callback(done)
        return outer


def _tiny(i: int) -> int:
    return i


def _warm_up() -> None:
    """One small arg-max: the worker imports refimpl and numpy's generators (run on every
    worker with ``client.run`` before the timing)."""
    from refimpl.perturbed import argmax_one_hot, perturbed

    f = perturbed(argmax_one_hot, num_samples=4, sigma=SIGMA, noise="gumbel", progress=False,
                  rng=np.random.SeedSequence(0))  # fmt: skip
    f(np.zeros((2, 3), dtype=np.float32))


# -- clusters ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _environ(**values: str | None) -> Any:
    """This process's environment with ``values`` (None: unset), restored afterwards. dask's
    nannies copy their pre-spawn variables into the environment of the process that starts
    them (the driver, for a local cluster), and take a variable found there over their
    configuration: a cluster started earlier would decide what the next one gets."""

    def put(settings: dict[str, str | None]) -> None:
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    saved = {name: os.environ.get(name) for name in values}
    try:
        put(values)
        yield
    finally:
        put(saved)


def _cluster(n_workers: int, *, trim_default: bool = False) -> tuple[Any, float]:
    """A local cluster's client and its start-up time (until a first task answered)."""
    import dask
    import distributed

    from refimpl.distributed import local_cluster
    from refimpl.distributed.cluster import MALLOC_MMAP, MALLOC_TRIM

    t0 = time.perf_counter()
    with warnings.catch_warnings():  # several clusters: the scheduler's HTTP port is taken
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        if trim_default:  # local_cluster's cluster with dask's default environment
            with (
                dask.config.set({MALLOC_TRIM: 65536, MALLOC_MMAP: None}),
                _environ(MALLOC_TRIM_THRESHOLD_="65536", MALLOC_MMAP_THRESHOLD_=None),
            ):
                client = distributed.Client(
                    n_workers=n_workers, threads_per_worker=1, processes=True,
                    dashboard_address=None,
                )  # fmt: skip
        else:
            client = local_cluster(n_workers)
    client.submit(_tiny, 1).result()
    return client, time.perf_counter() - t0


# -- the measures ------------------------------------------------------------------------------
def _startup(h: Any, rounds: int, first: float) -> None:
    times = [first]
    for _ in range(rounds - 1):
        client, seconds = _cluster(2)
        client.close()
        times.append(seconds)
    h.rows.append(Row("cluster start-up, 2 workers (one run each)", "local_cluster(2)", times, 0))


def _overhead(h: Any, label: str, executor: Any, n_tasks: int, rounds: int) -> float:
    from refimpl.parallel import run_tasks

    per_task = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        results = list(run_tasks(_tiny, n_tasks, executor))
        per_task.append((time.perf_counter() - t0) / n_tasks)
        assert results == list(range(n_tasks))
    h.rows.append(Row(f"{n_tasks} tiny tasks via run_tasks, per task", label, per_task, 0))
    return statistics.median(per_task)


def _perturbed_takes_an_executor() -> bool:
    from refimpl.perturbed import perturbed

    return "executor" in inspect.signature(perturbed).parameters


def _argmax(h: Any, executors: dict[str, tuple[int, Any]], rounds: int) -> dict | None:
    """The Gumbel arg-max on every executor, interleaved; the facts of each, by label."""
    from refimpl.perturbed import argmax_one_hot, perturbed

    b, d, n = (8, 10, 2000) if h.quick else (256, 100, 10**5)
    title = f"argmax {b}x{d} gumbel N={n:.0e}, rng=SeedSequence(0)"
    theta = np.random.default_rng(0).normal(size=(b, d)).astype(np.float32)
    options = dict(num_samples=n, sigma=SIGMA, noise="gumbel", progress=False)
    wall: dict[str, list[float]] = {label: [] for label in executors}
    cpu: dict[str, list[float]] = {label: [] for label in executors}
    thread_cpu: dict[str, list[float]] = {label: [] for label in executors}
    values: dict[str, list[np.ndarray]] = {label: [] for label in executors}
    for _ in range(rounds):
        for label, (_, inner) in executors.items():
            timed = None if inner is None else TimedExecutor(inner)
            f = perturbed(argmax_one_hot, rng=np.random.SeedSequence(0), executor=timed, **options)
            c0, h0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
            values[label].append(f(theta))
            wall[label].append(time.perf_counter() - t0)
            cpu[label].append(time.process_time() - c0 if timed is None else timed.cpu)
            here_thread = time.thread_time() - h0
            thread_cpu[label].append(here_thread if timed is None else timed.thread_cpu)
    here = statistics.median(wall["in process"])
    reference = values["in process"][0]
    facts = {}
    for label, (workers, _) in executors.items():
        row = Row(title, label, wall[label], 0, is_original=label == "in process")
        row.ratio = None if row.is_original else row.median / here
        h.rows.append(row)
        facts[label] = dict(
            workers=workers,
            wall=row.median,
            cpu=statistics.median(cpu[label]),
            thread_cpu=statistics.median(thread_cpu[label]),
            speedup=here / row.median,
            identical=all(np.array_equal(v, reference) for v in values[label]),
        )
    return facts


def _report(h: Any, facts: dict | None, overhead: float | None, rounds: int) -> None:
    say = h.printer
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    say(f"\n(medians of {rounds} interleaved round(s); {os.cpu_count()} cores, load {load:.2f})")
    if facts is not None:
        say("  CPU: seconds spent during the tasks by the processes running them (all their "
            "threads), and by the tasks' threads alone; busy = process CPU / (wall x workers)")  # fmt: skip
        say("  executor                 wall s  speed-up  efficiency  CPU process  CPU thread  "
            "busy  bit-identical")  # fmt: skip
        for label, f in facts.items():
            workers = max(1, f["workers"])
            busy = f["cpu"] / (f["wall"] * workers)
            efficiency = f["speedup"] / workers
            short = label.replace(TRIM_DEFAULT, "dask's trim")
            say(
                f"  {short:<23}  {f['wall']:6.2f}  {f['speedup']:6.2f}x  {efficiency:9.0%}  "
                f"{f['cpu']:9.2f}s  {f['thread_cpu']:9.2f}s  {busy:4.0%}  "
                f"{'yes' if f['identical'] else 'NO'}"
            )
        identical = all(f["identical"] for f in facts.values())
        say(f"goal: bit-identical on every executor: {'met' if identical else 'NOT met'}")
        two = facts["2 workers"]["speedup"]
        idle = "" if load < 0.5 else f" (the machine is not idle: load {load:.2f})"
        say(
            f"goal: 2 workers >= 1.6x faster than in process on an idle 2-core machine: "
            f"{two:.2f}x, {'met' if two >= 1.6 else 'NOT met'}{idle}"
        )
        if TRIM_DEFAULT in " ".join(facts):
            label = f"2 workers, {TRIM_DEFAULT}"
            slower = facts[label]["wall"] / facts["2 workers"]["wall"]
            say(f"  {TRIM_DEFAULT} takes {slower:.2f}x the time of local_cluster's workers")
    if overhead is not None:
        ms = overhead * 1e3
        say(f"goal: overhead per task < 20 ms: {ms:.2f} ms, {'met' if ms < 20 else 'NOT met'}")


def run(h: Any) -> None:
    rounds = 1 if h.quick else 3
    executors: dict[str, tuple[int, Any]] = {"in process": (0, None)}
    have_dask = importlib.util.find_spec("distributed") is not None
    if not have_dask:
        h.printer("dask.distributed is not installed: in process only (pip install "
                  "'refimpl[distributed]')")  # fmt: skip
    if not _perturbed_takes_an_executor():
        h.printer("the arg-max on a cluster is unavailable: refimpl.perturbed.perturbed does "
                  "not accept executor= yet")  # fmt: skip
    clients = []
    try:
        overhead = None
        if have_dask:
            two, first = _cluster(2)
            clients.append(two)
            _startup(h, rounds, first)
            one, _ = _cluster(1)
            clients.append(one)
            executors["1 worker"] = (1, one.get_executor())
            executors["2 workers"] = (2, two.get_executor())
            if not h.quick:
                trim, _ = _cluster(2, trim_default=True)
                clients.append(trim)
                executors[f"2 workers, {TRIM_DEFAULT}"] = (2, trim.get_executor())
            tasks = 50 if h.quick else 1000
            overhead = _overhead(h, "2 workers", two.get_executor(), tasks, rounds)
        facts = None
        _warm_up()
        for client in clients:
            client.run(_warm_up)
        if _perturbed_takes_an_executor():
            facts = _argmax(h, executors, rounds)
        elif not h.rows:  # nothing measured: time the in-process overhead of run_tasks
            overhead = _overhead(h, "in process", None, 50, 1)
        _report(h, facts if have_dask else None, overhead, rounds)
    finally:
        for client in clients:
            client.close()
