"""conformance.seed_graph, the reconstructed graph of seed 002's shortest-path example (a
fixture of the conformance cases): the unperturbed path, the adjoint of ``weights``, and
the perturbed probability and gradient, on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conformance import seed_graph
from refimpl.perturbed import perturbed, shortest_path


def as_np(backend, a):
    return backend.to_numpy(a).astype(np.float64)


def test_seed_graph_unperturbed_path_and_adjoint(backend):
    costs_np = np.array([0.4, 0.1, 0.1, 0.1])
    costs = backend.asarray(costs_np, dtype="float64")
    w = seed_graph.weights(costs)
    p = as_np(backend, shortest_path(w))
    edges = {(int(v), int(u)) for v, u in zip(*np.nonzero(p))}
    assert edges == {(2, 0), (7, 2), (6, 7), (5, 6), (4, 5), (8, 4)}  # 0-2-7-6-5-4-8
    dw_np = np.random.default_rng(0).standard_normal((9, 9))
    dw = backend.asarray(dw_np, dtype="float64")
    lhs = float(((as_np(backend, w) - as_np(backend, seed_graph.weights(costs * 0))) * dw_np).sum())
    rhs = float((costs_np * as_np(backend, seed_graph.weights_vjp(dw))).sum())
    assert math.isclose(lhs, rhs, rel_tol=1e-12)
    with pytest.raises(ValueError, match=r"final_edge_costs must have shape \(4,\)"):
        seed_graph.weights(backend.asarray([0.1, 0.2], dtype="float64"))


def test_seed_graph_probability_and_gradient(backend):
    """P[8,6] = Phi(-sqrt 2) = 0.0786 up to rare negative-cycle paths (about +0.002 for this
    reconstruction), N 1e4: 5 binomial sd + 0.004. The gradient through weights_vjp is
    -+2.0755 within 5 sd (sd about 0.095 per entry at N 1e4) + 1.5%."""
    n = 10_000
    costs = backend.asarray([0.4, 0.1, 0.1, 0.1], dtype="float64")
    w = seed_graph.weights(costs)
    p = perturbed(shortest_path, num_samples=n, sigma=0.05, batched=False, rng=0)
    u = backend.asarray(np.eye(81)[8 * 9 + 6].reshape(9, 9), dtype="float64")
    value, dw = p.value_and_vjp(w, u)
    q = 0.0786
    assert abs(as_np(backend, value)[8, 6] - q) < 5 * math.sqrt(q * (1 - q) / n) + 0.004
    g = as_np(backend, seed_graph.weights_vjp(dw))
    np.testing.assert_allclose(g, [-2.0755, 2.0755, 2.0755, 2.0755], atol=5 * 0.095 + 0.03)
