r"""Ready-made solvers :math:`y^*(\theta) = \arg\max_{y \in C} \langle y, \theta \rangle`,
vectorised over every leading axis (a perturbed optimizer calls them on samples x batch).

Each returns values in the input's floating dtype, in its namespace and on its device:

* :func:`argmax_one_hot`: the vertex of the simplex, :math:`C = \{e_1, \dots, e_D\}`;
* :func:`hard_or`: :math:`2\,[\exists i: \theta_i \ge 0] - 1` over the last axis (the
  seed's OR of signs; ``sign(0) = 0`` counts as true there, so ``>= 0`` here);
* :func:`ranks`: 0-based ranks (the vertex of the permutahedron maximising
  :math:`\langle y, \theta \rangle`);
* :func:`top_k_one_hot`: the indicator of the k largest entries (a k-hot vector; the vertex
  of :math:`\{y \in [0, 1]^D, \sum_i y_i = k\}`);
* :func:`shortest_path`: the edge indicator of a shortest path, by Bellman-Ford.

Ties go to the lowest index everywhere (``argmax``, stable sorts), as in ``backends.ops.topk``.
"""

from __future__ import annotations

import operator
from typing import Any

from refimpl.validation import check_array, check_bool, check_int

__all__ = ["argmax_one_hot", "hard_or", "ranks", "shortest_path", "top_k_one_hot"]


def _floating(x: Any, name: str = "x") -> tuple[Any, Any]:
    """``(xp, device)`` of a real floating array ``x``; TypeError naming ``name`` otherwise."""
    return check_array(x, name=name)


def _axis(x: Any, axis: Any) -> int:
    axis = check_int("axis", axis)
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {x.ndim} dimensions")
    return axis % x.ndim


def _positions(xp: Any, x: Any, axis: int, dtype: Any) -> Any:
    """0, 1, ..., n-1 along ``axis``, shaped to broadcast against ``x``."""
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return xp.reshape(xp.arange(x.shape[axis], dtype=dtype, device=x.device), tuple(shape))


def argmax_one_hot(x: Any, axis: int = -1) -> Any:
    """One-hot of the arg-max along ``axis``: ``y[..., i, ...] = [i == argmax(x)]``."""
    xp, _ = _floating(x)
    ax = _axis(x, axis)
    if x.shape[ax] == 0:
        raise ValueError(
            f"argmax_one_hot needs at least one entry along axis {axis}, got shape "
            f"{tuple(x.shape)} (the arg-max of nothing is undefined)"
        )
    idx = xp.argmax(x, axis=ax, keepdims=True)
    return xp.astype(_positions(xp, x, ax, idx.dtype) == idx, x.dtype)


def hard_or(x: Any) -> Any:
    r"""OR of the signs over the last axis: 1 if some :math:`x_i \ge 0`, else -1.

    Shape ``x.shape[:-1]``. Closed forms of its perturbed version over the last axis
    (Gumbel: :math:`1 - 2\exp(-\sum_i e^{x_i/\sigma})`; normal:
    :math:`1 - 2\prod_i \Phi(-x_i/\sigma)`) are the conformance oracles.
    """
    xp, _ = _floating(x)
    _axis(x, -1)
    return xp.astype(xp.any(x >= 0, axis=-1), x.dtype) * 2.0 - 1.0


def ranks(x: Any, axis: int = -1) -> Any:
    """0-based ranks along ``axis`` (the smallest entry gets 0): argsort of argsort; equal
    entries are ranked by position."""
    xp, _ = _floating(x)
    ax = _axis(x, axis)
    order = xp.argsort(x, axis=ax, stable=True)
    return xp.astype(xp.argsort(order, axis=ax, stable=True), x.dtype)


def top_k_one_hot(x: Any, k: int, axis: int = -1) -> Any:
    """Indicator of the ``k`` largest entries along ``axis`` (k ones per slice); among equal
    entries the lowest indices are kept."""
    xp, _ = _floating(x)
    ax = _axis(x, axis)
    k = check_int("k", k, low=0, high=x.shape[ax])  # at most the axis length
    order = xp.argsort(x, axis=ax, descending=True, stable=True)
    descending_rank = xp.argsort(order, axis=ax, stable=True)
    return xp.astype(descending_rank < k, x.dtype)


def shortest_path(
    weights: Any, *, source: int = 0, target: int = -1, symmetrize: bool = True
) -> Any:
    r"""Edge indicator of a shortest ``source`` -> ``target`` path, batched over leading axes.

    ``weights[..., u, v]`` is the cost of the edge u -> v (a huge cost, e.g. 1e6, for a
    missing edge). Returns ``P`` of the same shape with ``P[..., v, u] = 1`` when the edge
    u -> v is on the path (row = node, column = its predecessor), else 0.

    1. ``symmetrize``: :math:`W \leftarrow (W + W^\top)/2` (an undirected graph; the seed's
       example perturbs the full matrix, then symmetrises).
    2. Bellman-Ford (Bellman 1958; Ford 1956), n - 1 synchronous rounds from the source:
       :math:`d_v \leftarrow \min(d_v, \min_u d_u + W_{uv})`, recording the predecessor
       :math:`u` on strict improvement. No negative-cycle detection: a perturbed edge can go
       negative, and then predecessors may form a loop.
    3. Backtrack from the target for at most n steps: set ``P[v, pred(v)] = 1``, stop when v
       has no predecessor or the predecessor was already visited (so a loop shows as one
       extra edge, as in the seed's figures).

    This is the solver of the PyTorch port's shortest-path example, reconstructed from its
    printed numbers (its code is unpublished). Vectorised: each round is one (..., n, n) ``min``.
    """
    xp, dev = _floating(weights, name="weights")
    symmetrize = check_bool("symmetrize", symmetrize)
    if weights.ndim < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must have shape (..., n, n), got {tuple(weights.shape)}")
    n = weights.shape[-1]
    src, tgt = (_node(v, n, name) for v, name in ((source, "source"), (target, "target")))
    w = weights / 2.0 + xp.matrix_transpose(weights) / 2.0 if symmetrize else weights
    lead = tuple(w.shape[:-2])
    w = xp.reshape(w, (-1, n, n))
    s = w.shape[0]
    index = xp.__array_namespace_info__().default_dtypes(device=dev)["indexing"]
    nodes = xp.arange(n, dtype=index, device=dev)

    # Bellman-Ford: dist (s, n), pred (s, n) with -1 for "none".
    inf = xp.full((s, n), float("inf"), dtype=w.dtype, device=dev)
    dist = xp.where(nodes == src, xp.zeros_like(inf), inf)
    pred = xp.full((s, n), -1, dtype=index, device=dev)
    # Synchronous rounds: d_v <- min(d_v, min_u d_u + W_uv), reduced over the last axis
    # (w_in[s, v, u] = W[s, u, v]: the edges into v; a symmetrised W is its own transpose).
    w_in = w if symmetrize else xp.matrix_transpose(w)
    for _ in range(n - 1):
        candidates = dist[:, None, :] + w_in  # [s, v, u] = d_u + W_uv
        best = xp.min(candidates, axis=2)
        better = best < dist  # strict: ties keep the earlier predecessor
        dist = xp.where(better, best, dist)
        pred = xp.where(better, xp.astype(xp.argmin(candidates, axis=2), index), pred)

    # Backtrack from the target, all samples at once. Each node is the current one at most
    # once, so row v of P is the one-hot of pred[v] when v was left along the path.
    current = xp.full((s,), tgt, dtype=index, device=dev)
    visited = xp.broadcast_to(nodes == tgt, (s, n))
    left = xp.zeros((s, n), dtype=xp.bool, device=dev)  # P[v, pred(v)] = 1 for these v
    active = xp.ones((s,), dtype=xp.bool, device=dev)
    for _ in range(n):
        p = xp.take_along_axis(pred, current[:, None], axis=1)[:, 0]
        step = active & (p >= 0)
        here = nodes == current[:, None]
        left = left | (here & step[:, None])
        p_safe = xp.where(step, p, current)
        seen = xp.take_along_axis(visited, p_safe[:, None], axis=1)[:, 0]
        visited = visited | (nodes == p_safe[:, None])
        active = step & ~seen
        current = p_safe
    path = (nodes == pred[:, :, None]) & left[:, :, None]
    return xp.reshape(xp.astype(path, weights.dtype), (*lead, n, n))


def _node(v: Any, n: int, name: str) -> int:
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int node index, got {v!r}") from None
    if isinstance(v, bool) or not -n <= i < n:
        raise ValueError(f"{name} must be a node index in [-{n}, {n - 1}], got {v!r}")
    return i % n
