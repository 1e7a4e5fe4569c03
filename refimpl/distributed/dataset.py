"""``map_dataset``: one function over a data set, one result file per item, resumable.

``map_dataset(fn, items, out_dir)`` calls ``fn(item, rng)`` for every item, with
``rng = numpy.random.SeedSequence([seed, index])``, a *key* (``backends.keys``): passed as
``rng=`` to a refimpl Monte Carlo call it draws the same noise in any process, on any
number of workers. Item ``i``'s result goes to ``out_dir/NNNNNN.npz``
(:mod:`refimpl.distributed.files`), so a result depends on its item, its index and the
seed only: never on which worker computed it, in which order, or how often.

Exactly once, whatever fails:

* the files are written by this process (the driver) alone, as the results arrive,
  each atomically (temporary file, ``fsync``, ``os.replace``): a file is complete or absent,
  and the workers need no shared file system. A task that dask runs again after a lost
  worker returns the same bytes, and its file is written once;
* a rerun skips every item whose file is complete and was written for the same index, item,
  seed and function (its fingerprint, or ``name=``), and computes the others. A file that
  is damaged, truncated, or written for another item, seed or function is never taken as
  finished: it is recomputed, with a warning and an entry in ``summary.recomputed``;
* an item whose ``fn`` raises does not stop the others: once they are done,
  :class:`MapDatasetError` lists the failed indices and their errors, and the other
  results are in place for the rerun that retries the failed items.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends.progress import progress_bar
from refimpl.distributed.files import (
    encode,
    is_temporary,
    load_result,
    result_name,
    why_not_finished,
    write_atomic,
)
from refimpl.distributed.fingerprint import digest, function_fingerprint
from refimpl.parallel import check_executor
from refimpl.validation import check_bool, check_callable, check_int

__all__ = ["DatasetSummary", "MapDatasetError", "item_rng", "map_dataset"]


@dataclass(frozen=True)
class DatasetSummary:
    """What a :func:`map_dataset` run did.

    Attributes
    ----------
    out_dir : str
        The folder of the result files.
    paths : tuple of str
        The result file of every item, in item order (a failed item's file is absent).
    computed : tuple of int
        The items computed by this run (written now), in increasing order.
    skipped : tuple of int
        The items whose complete result file was already there.
    recomputed : dict of int to str
        Items computed although a file was there, and what was wrong with that file
        (damaged, or written for another item, seed or function).
    failed : dict of int to str
        Items whose ``fn`` raised, and the error (``MapDatasetError`` is then raised).
    """

    out_dir: str
    paths: tuple[str, ...]
    computed: tuple[int, ...]
    skipped: tuple[int, ...]
    recomputed: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Any:
        """Item ``index``'s result (:func:`refimpl.distributed.load_result`)."""
        return load_result(self.paths[index])


class MapDatasetError(RuntimeError):
    """``fn`` raised on some items; the other results are written.

    ``errors`` maps each failed index to its exception (the first is also the cause),
    ``summary`` is the run's :class:`DatasetSummary`.
    """

    def __init__(self, errors: dict[int, BaseException], summary: DatasetSummary) -> None:
        listed = "; ".join(
            f"item {i}: {type(e).__name__}: {e}" for i, e in sorted(errors.items())[:10]
        )
        more = f"; and {len(errors) - 10} more" if len(errors) > 10 else ""
        done = len(summary.paths) - len(errors)
        super().__init__(
            f"map_dataset: fn raised on {len(errors)} of {len(summary.paths)} items "
            f"(indices {sorted(errors)}): {listed}{more}. The other {done} results are in "
            f"{summary.out_dir}; a rerun computes only the missing ones"
        )
        self.errors = dict(sorted(errors.items()))
        self.summary = summary


def item_rng(seed: int, index: int) -> np.random.SeedSequence:
    """The key ``fn`` receives for item ``index``: ``SeedSequence([seed, index])``."""
    return np.random.SeedSequence([seed, index])


def _compute(fn: Callable[[Any, Any], Any], seed: int, meta: dict, item: Any, run: str) -> bytes:
    """One task: the bytes of item ``meta["index"]``'s result file (runs on a worker).

    ``run`` names the ``map_dataset`` call and is otherwise unused: dask names a task by
    its function and arguments, and would answer a rerun's task with the result (or the
    error) of an earlier run's task of the same arguments while that one is still held.
    """
    return encode(meta, fn(item, item_rng(seed, meta["index"])))


# -- checks ----------------------------------------------------------------------------------
def _check_items(items: Any) -> Any:
    if isinstance(items, str | bytes | os.PathLike):
        raise TypeError(
            f"items must be a sequence of items (a list of paths, an array of images), got "
            f"the single {type(items).__name__} {items!r}"
        )
    if isinstance(items, Mapping | Set):
        raise TypeError(
            f"items must be a sequence, got a {type(items).__name__}: item i must be the same "
            "item on every run, so pass an ordered list (sorted(...), list(d.values()))"
        )
    if hasattr(items, "__len__") and hasattr(items, "__getitem__"):
        return items
    if isinstance(items, Iterable):
        return list(items)
    raise TypeError(f"items must be a sequence or an iterable, got {type(items).__name__}")


def _check_out_dir(out_dir: Any) -> str:
    if not isinstance(out_dir, str | os.PathLike):
        raise TypeError(
            f"out_dir must be a path (str or os.PathLike), got {type(out_dir).__name__}"
        )
    path = os.fspath(out_dir)
    if isinstance(path, bytes) or not path:
        raise ValueError(f"out_dir must be a non-empty str path, got {out_dir!r}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"out_dir {path!r} exists and is not a folder")
    return path


def _check_executor(executor: Any) -> Any:
    if executor is not None and not isinstance(executor, cf.Executor):
        if callable(getattr(executor, "get_executor", None)):
            raise TypeError(
                "executor must be a concurrent.futures.Executor: pass client.get_executor() "
                "for a dask.distributed Client"
            )
    return check_executor(executor)


def _check_name(name: Any) -> str | None:
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be None or a non-empty str, got {name!r}")
    return name


def _remove_temporaries(out_dir: str) -> None:
    """Temporary files of a writer killed before its rename: never results, removed."""
    for entry in os.scandir(out_dir):
        if entry.is_file() and is_temporary(entry.name):
            os.remove(entry.path)


# -- running ---------------------------------------------------------------------------------
def _run_here(todo, fn, seed, items, on_result, on_error) -> None:
    for index, meta in todo:
        try:
            data = _compute(fn, seed, meta, items[index], "here")
        except Exception as exc:
            on_error(index, exc)
        else:
            on_result(index, data)


def _run_on(executor, window, todo, fn, seed, items, on_result, on_error) -> None:
    """Submit at most ``window`` tasks ahead; handle each result as it arrives."""
    waiting = iter(todo)
    run = uuid.uuid4().hex
    pending: dict[cf.Future, int] = {}

    def submit_more() -> None:
        while len(pending) < window:
            index, meta = next(waiting, (None, None))
            if index is None:
                return
            pending[executor.submit(_compute, fn, seed, meta, items[index], run)] = index

    try:
        submit_more()
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                try:
                    data = future.result()
                except Exception as exc:
                    on_error(index, exc)
                else:
                    on_result(index, data)
            submit_more()
    finally:
        for future in pending:
            future.cancel()


def map_dataset(
    fn: Callable[[Any, np.random.SeedSequence], Any],
    items: Iterable[Any],
    out_dir: str | os.PathLike,
    *,
    executor: Any = None,
    seed: int = 0,
    progress: bool | None = None,
    name: str | None = None,
    window: int = 128,
) -> DatasetSummary:
    """Run ``fn(item, rng)`` for every item and store each result in ``out_dir``.

    Parameters
    ----------
    fn : callable
        ``fn(item, rng)`` returns the arrays of one item: an array, a tuple of arrays or a
        dict of named arrays (numpy, torch or any array-API arrays; stored as numpy, read
        back with :func:`refimpl.distributed.load_result`). With an executor it runs in
        other processes, so it must be picklable (a module-level function, or a
        ``functools.partial`` of one); load big models inside it (cached per process), not
        as arguments sent with every task.
    items : sequence
        The data set: paths, arrays, anything ``fn`` takes (an iterable is listed first;
        sets and dicts, whose order is not the items', are refused). Item ``i`` must be the
        same item on every run of the same ``out_dir``.
    out_dir : str or path
        The folder of the result files ``NNNNNN.npz`` (item index, six digits at least),
        created if missing. One run per folder at a time.
    executor : concurrent.futures.Executor, optional
        Where the items run, one task each: None runs them here in order; a thread or
        process pool, or a dask cluster's ``client.get_executor()``
        (:func:`refimpl.distributed.local_cluster`). The files are the same bytes whatever
        the executor and the number of workers.
    seed : int
        ``rng = numpy.random.SeedSequence([seed, index])``: a key, to pass as ``rng=`` to
        refimpl's random functions (``numpy.random.default_rng(rng)`` for numpy draws of
        your own; ``backends.keys.seed_of(rng)`` is an int seed for a torch generator).
    progress : bool or None
        A progress bar over the items: True always, False never, None once the run has
        lasted 2 seconds.
    name : str, optional
        Names the computation in place of ``fn``'s fingerprint (qualified name and a hash
        of its code, :mod:`refimpl.distributed.fingerprint`): files written under another
        name or fingerprint are recomputed.
    window : int
        At most this many tasks are submitted ahead of the results (bounds the items and
        results in flight).

    Returns
    -------
    DatasetSummary
        The result paths in item order, and the items computed, skipped and recomputed.

    Raises
    ------
    MapDatasetError
        After every other item is done, when ``fn`` raised on some items (their indices and
        errors are listed; the other results are written).
    """
    fn = check_callable("fn", fn)
    items = _check_items(items)
    out_dir = _check_out_dir(out_dir)
    executor = _check_executor(executor)
    seed = check_int("seed", seed, low=0)
    progress = check_bool("progress", progress, optional=True)
    name = _check_name(name)
    window = check_int("window", window, low=1)

    os.makedirs(out_dir, exist_ok=True)
    _remove_temporaries(out_dir)
    function = function_fingerprint(fn, name)
    paths = tuple(os.path.join(out_dir, result_name(i)) for i in range(len(items)))
    todo, skipped, recomputed = [], [], {}
    for index in range(len(items)):
        meta = {"index": index, "seed": seed, "item": digest(items[index]), "function": function}
        if os.path.exists(paths[index]):
            why = why_not_finished(paths[index], meta)
            if why is None:
                skipped.append(index)
                continue
            recomputed[index] = why
        todo.append((index, meta))
    if recomputed:
        listed = "; ".join(f"{result_name(i)}: {why}" for i, why in list(recomputed.items())[:5])
        warnings.warn(
            f"map_dataset: {len(recomputed)} result file(s) in {out_dir} are not finished "
            f"results of this run and are recomputed: {listed}",
            stacklevel=2,
        )

    computed: list[int] = []
    errors: dict[int, BaseException] = {}
    bar = progress_bar(len(items), enabled=progress, desc="map_dataset", unit="item")

    def on_result(index: int, data: bytes) -> None:
        write_atomic(paths[index], data)
        computed.append(index)
        bar.update(1)

    def on_error(index: int, exc: BaseException) -> None:
        errors[index] = exc
        bar.set_postfix_str(f"{len(errors)} failed")
        bar.update(1)

    if skipped:
        bar.set_postfix_str(f"{len(skipped)} already done")
        bar.update(len(skipped))
    try:
        if executor is None:
            _run_here(todo, fn, seed, items, on_result, on_error)
        else:
            _run_on(executor, window, todo, fn, seed, items, on_result, on_error)
    finally:
        bar.close()
    summary = DatasetSummary(
        out_dir=out_dir,
        paths=paths,
        computed=tuple(sorted(computed)),
        skipped=tuple(skipped),
        recomputed=recomputed,
        failed={i: f"{type(e).__name__}: {e}" for i, e in sorted(errors.items())},
    )
    if errors:
        first = min(errors)
        raise MapDatasetError(errors, summary) from errors[first]
    return summary
