"""Tasks in a fixed order, in this process or on any ``concurrent.futures.Executor``.

The Monte Carlo loops split their work into *tasks* whose boundaries depend only on the
problem (a task of samples, a block of columns), never on the executor or the number of
workers. :func:`run_tasks` yields the results of tasks 0, 1, ..., n-1 in that order, and
the caller folds them in that order; so a result is bit-identical whether the tasks ran
here (``executor=None``), on a thread pool, or on a dask.distributed cluster
(``Client.get_executor()``), and whatever the number of workers.

A task is ``task(i)`` for a picklable ``task`` (a ``functools.partial`` of a module-level
function): executors that run in other processes pickle it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["TaskError", "check_executor", "run_tasks"]


class TaskError(RuntimeError):
    """A task raised: ``index`` is the task's, the original exception is the cause."""

    def __init__(self, what: str, index: int, error: BaseException) -> None:
        super().__init__(f"{what} {index} failed: {type(error).__name__}: {error}")
        self.index = index


def check_executor(executor: Any) -> Any:
    """``executor`` when it is None or has ``submit`` (a ``concurrent.futures.Executor``,
    such as dask's ``Client.get_executor()``); TypeError otherwise."""
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "executor must be None (run here) or a concurrent.futures.Executor, for example "
            f"distributed.Client(...).get_executor(); got {executor!r} ({type(executor).__name__})"
        )
    return executor


def run_tasks(
    task: Callable[[int], Any],
    n: int,
    executor: Any = None,
    *,
    what: str = "task",
    window: int | None = None,
) -> Iterator[Any]:
    """The results of ``task(0)``, ..., ``task(n - 1)``, yielded in that order.

    With an executor, at most ``window`` tasks (default: all) are submitted ahead of the
    one being waited for, so results waiting to be folded stay bounded. A task that raises
    stops the run: the tasks not yet started are cancelled and a :class:`TaskError` naming
    the task's index is raised from the original error.
    """
    if executor is None:
        for i in range(n):
            yield task(i)
        return
    window = n if window is None else max(1, window)
    futures: dict[int, Any] = {}
    submitted = 0
    try:
        for i in range(n):
            while submitted < n and submitted < i + window:
                futures[submitted] = executor.submit(task, submitted)
                submitted += 1
            future = futures.pop(i)
            try:
                result = future.result()
            except Exception as exc:
                raise TaskError(what, i, exc) from exc
            yield result
    finally:
        for future in futures.values():
            future.cancel()
