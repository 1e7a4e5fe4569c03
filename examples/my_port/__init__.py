"""my_port: a deliberately partial numpy port of rai_toolbox's perturbations, written from
the rai-toolbox 0.2.1 documentation (the ``AdditivePerturbation`` page and the docstrings of
``rai_toolbox.perturbations.init``), to show how a port runs the conformance suite
(``examples/my_port/conformance.py``).

What it has: an L2-ball sampler, an L-infinity-ball sampler with a deliberate bug, and an
additive perturbation with its gradient. What it lacks: the L1-ball sampler, the optimizers,
perturbed optimizers, noise tunnels, eigendistortions (the suite SKIPs those cases).
"""

from __future__ import annotations

import numpy as np


def _vectors(shape: tuple[int, ...], param_ndim: int | None) -> tuple[int, int]:
    """(number of vectors, their dimension): ``param_ndim`` None = the whole array is one
    vector; ``p >= 0``: the trailing ``p`` axes form each vector; ``p < 0``: all but the
    leading ``|p|`` axes do."""
    size = int(np.prod(shape))
    if param_ndim is None:
        return 1, size
    lead = shape[: len(shape) - param_ndim] if param_ndim >= 0 else shape[:-param_ndim]
    n = int(np.prod(lead))
    return n, size // max(n, 1)


def uniform_like_l2_n_ball(
    x: np.ndarray, epsilon: float = 1.0, param_ndim: int | None = -1, rng=None
) -> np.ndarray:
    """Uniform in the L2 ball of radius ``epsilon``: a Gaussian direction z / ||z||_2 times
    the radius epsilon * u^(1/d), u ~ U(0, 1) (d the vector's dimension)."""
    rng = np.random.default_rng(rng)
    n, d = _vectors(x.shape, param_ndim)
    z = rng.standard_normal((n, d))
    r = epsilon * rng.uniform(size=(n, 1)) ** (1.0 / d)
    return (r * z / np.linalg.norm(z, axis=1, keepdims=True)).reshape(x.shape).astype(x.dtype)


def uniform_like_linf_n_ball(
    x: np.ndarray, epsilon: float = 1.0, param_ndim: int | None = -1, rng=None
) -> np.ndarray:
    """Uniform in the box [-epsilon, epsilon]^d... with a DELIBERATE BUG for the example:
    it forgets to centre the draw, U(0, 2 epsilon), so the conformance suite FAILs it."""
    rng = np.random.default_rng(rng)
    return (2 * epsilon * rng.uniform(size=x.shape)).astype(x.dtype)


class AdditivePerturbation:
    """pert(data) = data + delta, delta broadcast over the leading axes of ``data``
    (``delta_ndim`` None: delta has the data's shape; ``k < 0``: drop the leading ``|k|``
    axes; ``k >= 0``: keep the trailing ``k``)."""

    def __init__(self, data: np.ndarray, init_fn=None, delta_ndim: int | None = None, rng=None):
        shape = data.shape
        if delta_ndim is not None:
            shape = shape[-delta_ndim:] if delta_ndim < 0 else shape[len(shape) - delta_ndim :]
        self.delta = np.zeros(shape, dtype=data.dtype)
        if init_fn is not None:
            self.delta = init_fn(self.delta, rng=rng)

    def __call__(self, data: np.ndarray) -> np.ndarray:
        return data + self.delta

    def grad_delta(self, grad_out: np.ndarray) -> np.ndarray:
        """d loss / d delta from d loss / d pert: summed over the broadcast axes."""
        lead = grad_out.ndim - self.delta.ndim
        return grad_out.sum(axis=tuple(range(lead))) if lead else grad_out
