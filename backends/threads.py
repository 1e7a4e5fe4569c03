"""The intra-op thread policy of chunked loops: one thread per operation on a CPU.

A Monte Carlo loop runs thousands of small operations (a chunk holds about 2^18 to 2^21
values). torch parallelises every CPU operation above 32768 elements over its intra-op
thread pool, and each one ends on a barrier: the operation lasts as long as its slowest
thread. On a machine whose cores are shared, a descheduled thread then stalls every
operation for a time slice. Measured on 2 cores under load 15 (256x100 arg-max, N = 1000,
normal noise, ``value_and_vjp``): 12.5-14.8 s with torch's 2 threads, 1.2-1.7 s with one,
against 2.5-3.1 s for the naive unchunked loop. The samples of a Monte Carlo loop are
independent, so its parallelism belongs to the tasks (``executor=``), not to each small
operation: :func:`one_thread_per_op` gives the loop one intra-op thread and restores the
caller's setting after it. The bottom eigendistortion's Krylov-Schur loop
(``refimpl.eigendistortion.solvers``) does the same for its own small operations between
the model's products (which keep torch's threads): there a 129 x 128 SVD took 42 ms on two
threads of a loaded machine and 2 ms on one.

numpy, array_api_strict and JAX need nothing here (numpy's elementwise operations are
single-threaded; JAX dispatches to XLA); CUDA is unaffected.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from backends.namespace import namespace_and_device
from backends.registry import backend_of

__all__ = ["one_thread_per_op"]

_lock = threading.Lock()
_depth = 0  # loops inside the policy now (threads of a pool may run several)
_saved = 0  # torch's thread count before the first of them


@contextlib.contextmanager
def one_thread_per_op(like: Any) -> Iterator[None]:
    """For torch arrays on the CPU (``like``'s library and device), one intra-op thread for
    the duration of the block; the caller's count is restored when the last block running
    in this process ends (``torch.set_num_threads`` is process-wide). A no-op elsewhere."""
    xp, device = namespace_and_device(like)
    if backend_of(xp).name != "torch" or getattr(device, "type", "cpu") != "cpu":
        yield
        return
    import torch

    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                torch.set_num_threads(_saved)
