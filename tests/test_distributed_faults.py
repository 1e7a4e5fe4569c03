"""Faults on a real cluster: a worker process killed in the middle of a job, and the driver
killed in the middle of a data-set run. Nothing is lost and nothing changes: every item's
file is written exactly once, and the files (and a Monte Carlo result) are the bits of an
uninterrupted run.

No test waits on the clock: a task that must be running when something is killed blocks
until the test creates a release file, and the test acts on files the tasks write (a
marker per call, naming the process; the result files).
"""

from __future__ import annotations

import functools
import inspect
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

import refimpl.distributed as rd
import refimpl.distributed.dataset as dataset_module

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: how long a blocked task or a waiting test waits before failing (never reached when the
#: test works: it only bounds a broken run)
PATIENCE = 120.0


@pytest.fixture(scope="module")
def client():
    """A cluster of this module's own: 2 worker processes (refimpl.distributed.local_cluster)."""
    pytest.importorskip("distributed")
    client = rd.local_cluster(2)
    try:
        yield client
    finally:
        client.close()


# -- functions run on the workers -------------------------------------------------------------
def noisy(item, rng):
    g = np.random.default_rng(rng)
    return {"value": item + g.normal(size=(3, 2)), "draws": g.integers(0, 100, size=5)}


def _mark(calls: str, tag: object) -> None:
    pathlib.Path(calls, f"{tag}-{os.getpid()}-{uuid.uuid4().hex}").touch()


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def gated(calls: str, release: str, first_gated: int, item, rng):
    """``noisy``, recording each call; items from ``first_gated`` on wait for ``release``."""
    _mark(calls, item)
    if item >= first_gated:
        _wait_for(release)
    return noisy(item, rng)


def gated_argmax(calls: str, release: str, driver: int, x):
    """``argmax_one_hot``; on a worker (not in the driver) it waits for ``release``."""
    from refimpl.perturbed import argmax_one_hot

    if os.getpid() != driver:
        _mark(calls, "task")
        _wait_for(release)
    return argmax_one_hot(x)


# -- helpers ----------------------------------------------------------------------------------
def markers(calls: pathlib.Path) -> list[tuple[str, int]]:
    """(tag, pid) of every recorded call."""
    out = []
    for p in calls.iterdir():
        tag, pid, _ = p.name.split("-")
        out.append((tag, int(pid)))
    return out


def wait_until(condition, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {PATIENCE} s for {what}")
        time.sleep(0.01)


def worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


def kill_the_worker_running(client, calls: pathlib.Path, tag: str) -> int:
    """Wait for a call tagged ``tag`` on a worker, SIGKILL that worker; its pid."""
    wait_until(lambda: any(t == tag for t, _ in markers(calls)), f"a call of {tag}")
    (pid,) = {p for t, p in markers(calls) if t == tag}
    assert pid in worker_pids(client), "the marker names no worker process"
    os.kill(pid, signal.SIGKILL)
    return pid


def in_thread(fn):
    """Run ``fn()`` in a thread; ``join()`` returns its result or raises its error."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join():
        thread.join(PATIENCE)
        assert not thread.is_alive(), "the run did not finish"
        if "error" in box:
            raise box["error"]
        return box["result"]

    return join


def file_bytes(paths) -> list[bytes]:
    return [pathlib.Path(p).read_bytes() for p in paths]


# -- the cluster ------------------------------------------------------------------------------
def test_local_cluster_workers_are_single_threaded_processes_with_malloc_thresholds(client):
    """One thread per worker process; glibc's trim and mmap thresholds at 256 MiB (not
    dask's 65536), or what this process's environment says."""
    from refimpl.distributed.cluster import MALLOC_THRESHOLD

    assert len(client.nthreads()) == 2 and set(client.nthreads().values()) == {1}
    assert os.getpid() not in worker_pids(client)
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        got = set(client.run(os.environ.get, name).values())
        assert got == {os.environ.get(name) or str(MALLOC_THRESHOLD)}, name


def test_worker_environ_keeps_a_value_of_this_processs_environment(monkeypatch):
    from refimpl.distributed.cluster import MALLOC_MMAP, MALLOC_TRIM, worker_environ

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert worker_environ() == {MALLOC_TRIM: None, MALLOC_MMAP: str(2**28)}


# -- a lost worker ----------------------------------------------------------------------------
def test_a_killed_worker_loses_nothing_and_changes_nothing(tmp_path, client, monkeypatch):
    calls, release = tmp_path / "calls", tmp_path / "release"
    calls.mkdir()
    items, blocked = list(range(10)), 4
    fn = functools.partial(gated, str(calls), str(release), blocked)
    writes: list[int] = []
    write = dataset_module.write_atomic

    def counting_write(path, data):
        writes.append(int(os.path.basename(path)[:6]))
        write(path, data)

    monkeypatch.setattr(dataset_module, "write_atomic", counting_write)
    # items 4 to 9 wait for the release: the worker running item 4 is killed meanwhile
    out = tmp_path / "out"
    join = in_thread(lambda: rd.map_dataset(fn, items, out, executor=client.get_executor()))
    killed = kill_the_worker_running(client, calls, str(blocked))
    release.touch()
    summary = join()

    assert sorted(writes) == items, "every item's file is written exactly once"
    assert summary.computed == tuple(items) and summary.failed == {}
    pids_of_blocked = [p for t, p in markers(calls) if t == str(blocked)]
    assert len(pids_of_blocked) >= 2 and killed in pids_of_blocked, "item 4 ran again"
    reference = rd.map_dataset(fn, items, tmp_path / "reference")  # here, uninterrupted
    assert file_bytes(summary.paths) == file_bytes(reference.paths)


def _perturbed_takes_an_executor() -> bool:
    from refimpl.perturbed import perturbed

    return "executor" in inspect.signature(perturbed).parameters


@pytest.mark.skipif(
    not _perturbed_takes_an_executor(),
    reason="refimpl.perturbed.perturbed does not accept executor= yet",
)
def test_a_killed_worker_leaves_a_perturbed_result_bit_identical(tmp_path, client):
    from refimpl.perturbed import perturbed

    calls, release = tmp_path / "calls", tmp_path / "release"
    calls.mkdir()
    func = functools.partial(gated_argmax, str(calls), str(release), os.getpid())
    theta = np.random.default_rng(1).normal(size=(8, 5))
    options = dict(num_samples=4000, sigma=0.5, noise="gumbel", progress=False)
    reference = perturbed(func, rng=np.random.SeedSequence(0), **options)(theta)
    on_cluster = perturbed(
        func, rng=np.random.SeedSequence(0), executor=client.get_executor(), **options
    )
    join = in_thread(lambda: on_cluster(theta))
    killed = kill_the_worker_running(client, calls, "task")
    release.touch()
    value = join()
    np.testing.assert_array_equal(value, reference)
    assert killed in {p for _, p in markers(calls)}


# -- a lost driver ----------------------------------------------------------------------------
DRIVER = """
import functools, sys
import distributed
import refimpl.distributed as rd
from tests.test_distributed_faults import gated

address, calls, release, out = sys.argv[1:]
client = distributed.Client(address)
fn = functools.partial(gated, calls, release, {first_gated})
rd.map_dataset(fn, list(range({n})), out, executor=client.get_executor(), seed=5)
"""


def test_a_killed_driver_resumes_where_it_stopped(tmp_path, client):
    calls, release, out = tmp_path / "calls", tmp_path / "release", tmp_path / "out"
    calls.mkdir()
    n, first_gated = 8, 3
    address = client.scheduler.address
    code = DRIVER.format(first_gated=first_gated, n=n)
    args = [sys.executable, "-c", code, address, str(calls), str(release), str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # items 0, 1, 2 finish; the others wait for the release, so the run is mid-way
        def written() -> list[str]:
            return sorted(p.name for p in out.glob("*.npz")) if out.is_dir() else []

        wait_until(lambda: len(written()) == first_gated, "3 files", proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert written() == [f"00000{i}.npz" for i in range(first_gated)]
    release.touch()  # lets the orphaned tasks on the workers finish

    fn = functools.partial(gated, str(calls), str(release), first_gated)
    summary = rd.map_dataset(fn, list(range(n)), out, executor=client.get_executor(), seed=5)
    assert summary.skipped == tuple(range(first_gated))
    assert summary.computed == tuple(range(first_gated, n)) and summary.recomputed == {}
    done_before = [t for t, _ in markers(calls) if int(t) < first_gated]
    assert sorted(done_before) == [str(i) for i in range(first_gated)], "none recomputed"
    assert sorted(p.name for p in out.iterdir()) == [f"00000{i}.npz" for i in range(n)]

    reference = rd.map_dataset(fn, list(range(n)), tmp_path / "reference", seed=5)
    assert file_bytes(summary.paths) == file_bytes(reference.paths)
    for got, expected in zip(summary.paths, reference.paths):
        assert rd.read_metadata(got) == rd.read_metadata(expected)
