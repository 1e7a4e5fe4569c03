"""``local_cluster``: a dask.distributed cluster of worker processes on this machine.

dask is optional: it is imported when :func:`local_cluster` is called, never before
(``pip install "refimpl[distributed]"`` installs it).
"""

from __future__ import annotations

import os
from typing import Any

from refimpl.validation import check_int

__all__ = ["MALLOC_MMAP", "MALLOC_THRESHOLD", "MALLOC_TRIM", "local_cluster", "worker_environ"]

#: the dask settings that export glibc's ``MALLOC_TRIM_THRESHOLD_`` and
#: ``MALLOC_MMAP_THRESHOLD_`` to every worker it spawns
MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
MALLOC_MMAP = "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_"
#: both thresholds in the workers (bytes): blocks below it are kept and reused
MALLOC_THRESHOLD = 2**28


def worker_environ() -> dict[str, Any]:
    """The dask settings :func:`local_cluster` starts its workers with: glibc's trim and mmap
    thresholds at :data:`MALLOC_THRESHOLD` (256 MiB), except where this process's
    environment sets one (the workers inherit that value)."""
    return {
        key: None if os.environ.get(key.rsplit(".", 1)[1]) else str(MALLOC_THRESHOLD)
        for key in (MALLOC_TRIM, MALLOC_MMAP)
    }


def local_cluster(n_workers: int = 2, **kwargs: Any) -> Any:
    """Start ``n_workers`` worker processes here and return a ``distributed.Client`` to them.

    The cluster is ``distributed.LocalCluster(n_workers=n_workers, processes=True,
    threads_per_worker=1, dashboard_address=None, **kwargs)`` (``kwargs`` may override
    these), owned by the client: ``client.close()``, or the end of a
    ``with local_cluster() as client:`` block, stops the workers too. Pass
    ``client.get_executor()`` as ``executor=``::

        with local_cluster(2) as client:
            summary = map_dataset(fn, items, "out", executor=client.get_executor())

    One thread per worker process: the numerical libraries keep their own threads, and
    workers that are processes do not share the interpreter lock.

    The workers start with glibc's ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_``
    at 256 MiB (:func:`worker_environ`). dask sets the first to 65536 by default
    (``distributed.nanny.pre-spawn-environ``) so that workers hand freed memory back to the
    system sooner; the Monte Carlo loops' temporaries are megabytes, and glibc's allocator
    then returns each one to the kernel and asks for it again at the next chunk, page faults
    included. Without the variable, its own dynamic thresholds still did so often enough to
    cost a third: the 256x100 arg-max with N = 40,000 on one worker took 11.4 s with
    neither variable set, 8.1 s with both at 256 MiB, 9.4 s in process (medians of 4
    interleaved runs). The price: a worker keeps up to 256 MiB of freed memory for reuse.
    A value set in this process's environment is inherited by the workers instead (dask
    gives the environment precedence over its configuration; note that its nannies also copy
    their pre-spawn variables into the environment of the process that starts them).
    """
    n_workers = check_int("n_workers", n_workers, low=1)
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise ImportError(
            'local_cluster needs dask.distributed: pip install "refimpl[distributed]"'
        ) from exc
    options = dict(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    options.update(kwargs)
    with dask.config.set(worker_environ()):  # read when each worker's nanny is made
        return distributed.Client(**options)
