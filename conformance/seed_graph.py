r"""The 9-node graph of seed 002's shortest-path example, reconstructed (a test fixture of
the conformance suite).

The README of the PyTorch perturbations port (like the TensorFlow original's README) shows a
perturbed shortest path from node 0 to node 8 and the gradient of the weight of edge
6 -> 8 with respect to four edge costs, but not the code (``edge_costs_to_weights`` and
``shortest_path`` are unpublished). Decoding its figures gives undirected edges with costs

    0-2: 0.10, 0-3: 0.07, 2-3: 0.09, 2-7: 0.19, 3-7: 0.27, 6-7: 0.14, 2-5: 0.71, 1-4: 0.07

plus the four final edges 6-8, 5-6, 4-5, 4-8 whose costs are the example's variable
``final_edges_costs = [0.4, 0.1, 0.1, 0.1]``; missing edges cost 1e6. With the solver of
:func:`refimpl.perturbed.shortest_path` (symmetrise, Bellman-Ford, backtrack) and normal
noise, ``P[8, 6] = Phi(-(c_0 - c_1 - c_2 - c_3) / (sigma sqrt 2))``: 0.0786 for the
documented costs and sigma 0.05, with gradient ``+-phi(sqrt 2) / (sigma sqrt 2) = 2.0755``.

:func:`weights` builds the cost matrix (linear in the four costs, so autograd of a torch
front end differentiates it) and :func:`weights_vjp` is its adjoint for refimpl's explicit
derivatives.
"""

from __future__ import annotations

from typing import Any

from backends import floating_dtype, namespace_and_device

__all__ = ["EDGES", "FINAL_EDGES", "NO_EDGE", "weights", "weights_vjp"]

N_NODES = 9
NO_EDGE = 1e6
EDGES = {(0, 2): 0.10, (0, 3): 0.07, (2, 3): 0.09, (2, 7): 0.19, (3, 7): 0.27,
         (6, 7): 0.14, (2, 5): 0.71, (1, 4): 0.07}  # fmt: skip
FINAL_EDGES = ((6, 8), (5, 6), (4, 5), (4, 8))
SOURCE, TARGET = 0, 8


def _fixed() -> list[list[float]]:
    w = [[NO_EDGE] * N_NODES for _ in range(N_NODES)]
    for (i, j), c in EDGES.items():
        w[i][j] = w[j][i] = c
    for i, j in FINAL_EDGES:
        w[i][j] = w[j][i] = 0.0
    return w


def _masks() -> list[list[list[float]]]:
    """One symmetric 0/1 mask per final edge."""
    out = []
    for i, j in FINAL_EDGES:
        m = [[0.0] * N_NODES for _ in range(N_NODES)]
        m[i][j] = m[j][i] = 1.0
        out.append(m)
    return out


def weights(final_edge_costs: Any) -> Any:
    """The (9, 9) cost matrix for the four final-edge costs (shape (4,), any backend)."""
    xp, dev = namespace_and_device(final_edge_costs)
    dt = floating_dtype(xp, final_edge_costs, name="final_edge_costs")
    if tuple(final_edge_costs.shape) != (len(FINAL_EDGES),):
        raise ValueError(
            f"final_edge_costs must have shape (4,), got {tuple(final_edge_costs.shape)}"
        )
    fixed = xp.asarray(_fixed(), dtype=dt, device=dev)
    masks = xp.asarray(_masks(), dtype=dt, device=dev)
    return fixed + xp.sum(final_edge_costs[:, None, None] * masks, axis=0)


def weights_vjp(cotangent: Any) -> Any:
    """Adjoint of :func:`weights`: ``d cost_k = dW[i, j] + dW[j, i]`` for edge k = (i, j)."""
    xp, dev = namespace_and_device(cotangent)
    masks = xp.asarray(_masks(), dtype=cotangent.dtype, device=dev)
    return xp.sum(cotangent[None, ...] * masks, axis=(1, 2))
