"""``local_cluster``: a dask.distributed cluster of worker processes on this machine.

dask is optional: it is imported when :func:`local_cluster` is called, never before
(``pip install "refimpl[distributed]"`` installs it).
"""

from __future__ import annotations

from typing import Any

from refimpl.validation import check_int

__all__ = ["MALLOC_TRIM", "local_cluster"]

#: the dask setting that exports ``MALLOC_TRIM_THRESHOLD_`` to every worker it spawns
MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


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

    The workers start without ``MALLOC_TRIM_THRESHOLD_``, which dask sets to 65536 by
    default (``distributed.nanny.pre-spawn-environ``) so that workers hand freed memory back
    to the system sooner: glibc's allocator then returns every large temporary (the Monte
    Carlo loops' blocks are megabytes) to the kernel and asks for it again at the next
    block, which made these loops about 15% slower in the workers. A value set in this
    process's environment is still inherited by the workers.
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
    with dask.config.set({MALLOC_TRIM: None}):  # read when each worker's nanny is made
        return distributed.Client(**options)
