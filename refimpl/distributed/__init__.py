"""Beyond one machine: data sets on a cluster, bit-identical to one process.

* :func:`map_dataset` runs ``fn(item, rng)`` over a data set, here or on any
  ``concurrent.futures.Executor`` (a dask cluster's ``client.get_executor()``), writing one
  result file per item atomically; rerun after an interruption, it computes only the
  missing items. ``rng = numpy.random.SeedSequence([seed, index])`` is a key: passed as
  ``rng=`` to refimpl's random functions, it draws the same noise on any worker.
* :func:`local_cluster` starts a dask cluster of worker processes on this machine.
* :func:`load_result` and :func:`read_metadata` read a result file.

dask is imported only by :func:`local_cluster`; importing this package loads neither dask
nor torch. The teaching page is ``docs/distributed.md``.
"""

from refimpl.distributed.cluster import local_cluster
from refimpl.distributed.dataset import DatasetSummary, MapDatasetError, item_rng, map_dataset
from refimpl.distributed.files import load_result, read_metadata
from refimpl.distributed.fingerprint import digest, function_fingerprint

__all__ = [
    "DatasetSummary",
    "MapDatasetError",
    "digest",
    "function_fingerprint",
    "item_rng",
    "load_result",
    "local_cluster",
    "map_dataset",
    "read_metadata",
]
