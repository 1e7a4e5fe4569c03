r"""Quadrature rules on :math:`[0, 1]` for the path integral of integrated gradients.

A rule of ``n`` points gives nodes :math:`\alpha_s` and weights :math:`w_s` with
:math:`\int_0^1 g(\alpha)\,d\alpha \approx \sum_s w_s\, g(\alpha_s)`:

==================  ===============================  ===================================
method              nodes :math:`\alpha_s`           weights :math:`w_s`
==================  ===============================  ===================================
gausslegendre       roots of :math:`P_n(2\alpha-1)`  Gauss weights / 2 (exact for
                                                     polynomials of degree <= 2n - 1)
riemann_left        :math:`s/n`, s = 0..n-1          :math:`1/n`
riemann_right       :math:`(s+1)/n`                  :math:`1/n`
riemann_middle      :math:`(s+1/2)/n`                :math:`1/n`
riemann_trapezoid   :math:`s/(n-1)`, s = 0..n-1      :math:`1/(n-1)`, halved at both ends
==================  ===============================  ===================================

Every rule's weights sum to 1, so a constant integrand (a linear model) is integrated
exactly. captum 0.9 gives ``riemann_trapezoid`` the weights ``1/n`` on the same nodes
(sum ``(n-1)/n``), which biases every attribution by the factor ``(n-1)/n``.

Gauss-Legendre nodes come from Newton's method on the three-term recurrence
:math:`(k+1) P_{k+1}(x) = (2k+1)\,x P_k(x) - k P_{k-1}(x)`, with
:math:`P_n'(x) = n (x P_n - P_{n-1}) / (x^2 - 1)` and weights
:math:`2 / ((1 - x^2) P_n'(x)^2)` (Abramowitz & Stegun 25.4.29), in plain Python floats.
"""

from __future__ import annotations

import functools
import math

from refimpl.validation import check_int

METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def _legendre(n: int, x: float) -> tuple[float, float]:
    """:math:`(P_n(x), P_{n-1}(x))`."""
    p_prev, p = 1.0, x
    for k in range(1, n):
        p_prev, p = p, ((2 * k + 1) * x * p - k * p_prev) / (k + 1)
    return p, p_prev


@functools.lru_cache(maxsize=64)
def gauss_legendre(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes (ascending) and weights of the n-point Gauss-Legendre rule on [0, 1]."""
    if n == 1:
        return (0.5,), (1.0,)
    nodes, weights = [], []
    for i in range(1, n + 1):
        x = math.cos(math.pi * (i - 0.25) / (n + 0.5))  # Tricomi's initial guess
        for _ in range(100):
            p, p_prev = _legendre(n, x)
            dp = n * (x * p - p_prev) / (x * x - 1.0)
            dx = p / dp
            x -= dx
            if abs(dx) <= 1e-16:
                break
        p, p_prev = _legendre(n, x)
        dp = n * (x * p - p_prev) / (x * x - 1.0)
        nodes.append(0.5 * (1.0 + x))
        weights.append(1.0 / ((1.0 - x * x) * dp * dp))  # 2 / (...) halved for [0, 1]
    order = sorted(range(n), key=nodes.__getitem__)
    return tuple(nodes[i] for i in order), tuple(weights[i] for i in order)


def quadrature(method: str, n_steps: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(alphas, weights)`` of ``method`` with ``n_steps`` points (see the table above)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    n = check_int("n_steps", n_steps, low=2 if method == "riemann_trapezoid" else 1)
    if method == "gausslegendre":
        return gauss_legendre(n)
    if method == "riemann_trapezoid":
        w = [1.0 / (n - 1)] * n
        w[0] = w[-1] = 0.5 / (n - 1)
        return tuple(s / (n - 1) for s in range(n)), tuple(w)
    shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return tuple((s + shift) / n for s in range(n)), (1.0 / n,) * n
