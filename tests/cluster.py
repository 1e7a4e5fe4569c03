"""A real dask.distributed ``LocalCluster`` for the tests of ``executor=``.

Use it in a test module as::

    from tests.cluster import cluster_fixture

    executor = cluster_fixture()          # module-scoped fixture: a Client's executor

The fixture starts ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
dashboard_address=None)`` once per module, yields ``client.get_executor()`` (a
``concurrent.futures.Executor``; ``executor.client`` is the ``Client``), and closes both at
the end. Without dask.distributed the tests that use it skip.
"""

from __future__ import annotations

import pytest


def start_cluster(n_workers: int = 2):
    """``(cluster, client)``: a 2-process local cluster (the tests' standard one)."""
    distributed = pytest.importorskip("distributed")
    import dask

    from refimpl.distributed.cluster import worker_environ

    # dask's workers trim malloc's free lists at 64 KiB by default, which slows loops whose
    # temporaries are MBs: the workers of refimpl.distributed.local_cluster
    with dask.config.set(worker_environ()):
        cluster = distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    client = distributed.Client(cluster)
    return cluster, client


def cluster_fixture(n_workers: int = 2):
    """A module-scoped pytest fixture yielding a cluster's executor."""

    @pytest.fixture(scope="module")
    def executor():
        cluster, client = start_cluster(n_workers)
        ex = client.get_executor()
        ex.client = client
        try:
            yield ex
        finally:
            client.close()
            cluster.close()

    return executor
