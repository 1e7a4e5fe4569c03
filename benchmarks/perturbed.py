"""Perturbed optimizers: speed, peak memory and estimator accuracy (issue 10, seed 002).

Problems (``--quick``: tiny sizes, a smoke run):

* argmax one-hot on the seed's 2x5 batch, Gumbel noise, sigma 0.5, N = 10^6, forward +
  gradient of ``sum(y^2)``: the torch front end ``refimpl.torch.perturbed`` and refimpl
  (``value_and_vjp``, torch and numpy) against the reference, an unchunked torch
  implementation of the port's algorithm written below (``torch.distributions.Gumbel`` on the
  whole [N, B, D] block, every sample kept for backward); then the ratio to optax's
  ``make_perturbed_fun`` under ``jax.jit`` (vmapped over the batch with split keys).
* argmax one-hot on a random 256x100 batch, N = 10^4 and 10^5, forward + backward: the
  front end (chunked, per-example Jacobian kept for backward) against the unchunked
  reference at 10^4 (about 6 GiB). At 10^5 the reference would need about 24 B x N x B x D
  = 61 GB and is not run. Goals: peak < 1.5 GiB for both, 10^4 in < 1/4 of the reference.
  Each runs once, timed and memory-sampled in the same call (a call takes seconds to minutes).
* contention (issue 22): 256x100 argmax, normal noise, N = 1000 and 3000: refimpl on torch
  (value_and_vjp) against the naive unchunked torch loop (goal <= 1.2x), and the front end's
  forward + backward against the port's unchunked algorithm (goal <= 1.5x), with the peaks;
  ``python -m benchmarks perturbed --load 2`` runs everything under two busy processes.
* the RMSE of the Jacobian estimate against the exact softmax Jacobian on the 2x5 example
  (sigma 0.5, N 1024, Gumbel; 32 seeds) for every sampling option, with and without the
  baseline (the table of docs/perturbed.md).
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

THETA_BATCH = [[-0.6, 1.9, -0.2, 1.1, -1.0], [-0.6, 1.0, -0.2, 1.8, -1.0]]
SIGMA = 0.5
MODES = [(s, b) for s in ("mc", "antithetic", "qmc") for b in (False, True)]


# -- the reference: the port's algorithm, unchunked -------------------------------------------
def _port_function():
    import torch

    class PortEstimator(torch.autograd.Function):
        """Forward: Z ~ Gumbel on the whole (N, B, D) block, Y = func(theta + sigma Z) for all
        samples at once, mean over samples. Backward: J^T dy = mean_n <Y_n, dy> grad_nu(Z_n)
        / sigma, from the stored Y and grad_nu(Z) (no baseline)."""

        @staticmethod
        def forward(ctx, theta, func, num_samples, sigma):
            shape = (num_samples, *theta.shape)
            z = torch.distributions.Gumbel(0.0, 1.0).sample(shape).to(theta.dtype)
            grad_nu = 1.0 - torch.exp(-z)
            x = (theta.unsqueeze(0) + sigma * z).reshape(-1, *theta.shape[1:])
            y = func(x).reshape(num_samples, theta.shape[0], -1)
            ctx.save_for_backward(y, grad_nu)
            ctx.sigma, ctx.shape = sigma, theta.shape
            return y.mean(dim=0).reshape(theta.shape[0], *y.shape[2:])

        @staticmethod
        def backward(ctx, dy):
            y, grad_nu = ctx.saved_tensors
            n, b = y.shape[0], y.shape[1]
            s = torch.einsum("nbd,bd->nb", y, dy.reshape(b, -1))
            g = torch.einsum("nbd,nb->bd", grad_nu.reshape(n, b, -1), s) / (ctx.sigma * n)
            return g.reshape(ctx.shape), None, None, None

    return PortEstimator


def _torch_argmax(x):
    import torch

    return torch.nn.functional.one_hot(torch.argmax(x, dim=-1), x.shape[-1]).to(x.dtype)


def _forward_backward(fn: Callable, theta0: Any) -> Callable[[], Any]:
    """One forward of ``fn`` and the backward of sum(y^2)."""

    def run():
        theta = theta0.detach().clone().requires_grad_(True)
        y = fn(theta)
        (y**2).sum().backward()
        return theta.grad

    return run


def _optax_fn(n: int, theta: np.ndarray) -> Callable[[], Any] | None:
    if importlib.util.find_spec("optax") is None:
        return None
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    from optax import perturbations as op

    def argmax(x):
        return jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1])

    import inspect

    # optax renames sigma to scale after 0.2.8 (PR 1520)
    name = "scale" if "scale" in inspect.signature(op.make_perturbed_fun).parameters else "sigma"
    f = op.make_perturbed_fun(argmax, num_samples=n, noise=op.Gumbel(), **{name: SIGMA})

    def loss(t, key):
        y = jax.vmap(f)(jax.random.split(key, t.shape[0]), t)
        return jnp.sum(y**2)

    step = jax.jit(jax.value_and_grad(loss))
    t = jnp.asarray(theta, dtype=jnp.float32)
    key = jax.random.key(0)

    def run():
        value, grad = step(t, key)
        return grad.block_until_ready()

    run()  # compile outside the timing
    return run


# -- problems ----------------------------------------------------------------------------------
def _small(h: Any) -> None:
    import torch

    import refimpl.torch as bt
    from refimpl.perturbed import argmax_one_hot, perturbed

    n = 10**4 if h.quick else 10**6
    theta_np = np.asarray(THETA_BATCH, dtype=np.float32)
    theta_t = torch.from_numpy(theta_np)
    u_np = 2 * np.asarray(THETA_BATCH, dtype=np.float32)  # a fixed cotangent for refimpl
    port = _port_function()
    front = bt.perturbed(_torch_argmax, num_samples=n, sigma=SIGMA, noise="gumbel",
                         generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    ref = perturbed(
        argmax_one_hot, num_samples=n, sigma=SIGMA, noise="gumbel", rng=0, progress=False
    )
    ours = {
        "refimpl.torch.perturbed fwd+bwd": _forward_backward(front, theta_t),
        "refimpl torch value_and_vjp": lambda: ref.value_and_vjp(theta_t, torch.from_numpy(u_np)),
        "refimpl numpy value_and_vjp": lambda: ref.value_and_vjp(theta_np, u_np),
    }
    reference = (
        "port algorithm, unchunked torch",
        _forward_backward(lambda t: port.apply(t, _torch_argmax, n, SIGMA), theta_t),
    )
    title = f"argmax 2x5 gumbel N={n:.0e} fwd+grad"
    rows = h.compare(title, ours, original=reference, note="ratio vs the unchunked port algorithm")
    if h.quick:  # importing jax and compiling take longer than the whole smoke run
        h.printer("  --quick: optax is not run")
        return
    optax = _optax_fn(n, theta_np)
    if optax is None:
        h.printer("  optax not installed: no ratio to optax")
        return
    (orow,) = h.compare(title, {"optax make_perturbed_fun (jit)": optax})
    for r in rows[1:]:
        h.printer(f"  {r.impl}: {r.median / orow.median:.2f}x the time of optax under jit")


def _once(h: Any, title: str, impl: str, fn: Callable[[], Any], ref: Any = None) -> Any:
    """Time one call and take its peak memory in the same call (a call lasts seconds to
    minutes here, so the harness's warm-up and separate memory call are skipped)."""
    import gc

    from benchmarks.harness import Row, _malloc_trim, _PeakSampler

    gc.collect()
    _malloc_trim()
    with _PeakSampler() as sampler:
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
    row = Row(
        title, impl, [elapsed], sampler.rise, is_original=ref is None and impl.startswith("port")
    )
    if ref is not None:
        row.ratio = elapsed / ref.median
    h.rows.append(row)
    return row


def _large(h: Any) -> None:
    import torch

    import refimpl.torch as bt

    b, d = (8, 10) if h.quick else (256, 100)
    sizes = (100, 1000) if h.quick else (10**4, 10**5)
    theta = torch.randn(b, d, generator=torch.Generator().manual_seed(0))
    port = _port_function()
    ref = None
    for n in sizes:
        title = f"argmax {b}x{d} gumbel N={n:.0e} fwd+bwd (one call)"
        if n == sizes[0]:
            run = _forward_backward(lambda t, n=n: port.apply(t, _torch_argmax, n, SIGMA), theta)
            ref = _once(h, title, "port algorithm, unchunked torch", run)
        else:
            h.printer(
                f"  {b}x{d} N={n:.0e}: the unchunked reference is not run (it would hold about "
                f"{24 * n * b * d / 2**30:.0f} GiB: 24 B per sample and entry)"
            )
        front = bt.perturbed(_torch_argmax, num_samples=n, sigma=SIGMA, noise="gumbel",
                             generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
        row = _once(h, title, "refimpl.torch.perturbed fwd+bwd", _forward_backward(front, theta),
                    ref if n == sizes[0] else None)  # fmt: skip
        ratio = f", {row.ratio:.2f}x the reference's time (goal < 0.25)" if row.ratio else ""
        h.printer(
            f"  {b}x{d} N={n:.0e}: front end {row.min:.1f} s, peak {row.peak_bytes / 2**30:.2f} "
            f"GiB (goal < 1.5 GiB){ratio}"
        )


def _naive_value_and_vjp(theta: Any, u: Any, n: int, sigma: float, g: Any) -> tuple[Any, Any]:
    """The naive unchunked torch loop: every sample at once (N x B x D noise), the baseline
    subtracted, one einsum for the vjp."""
    import torch

    z = torch.randn((n, *theta.shape), generator=g, dtype=theta.dtype)
    y = _torch_argmax((theta + sigma * z).reshape(-1, theta.shape[-1])).reshape(z.shape)
    s = ((y - _torch_argmax(theta)) * u).sum(-1)  # (N, B)
    return y.mean(0), torch.einsum("nb,nbd->bd", s, z) / (n * sigma)


def _naive_port_normal():
    """The port's algorithm, unchunked, with normal noise (its autograd Function)."""
    import torch

    class PortNormal(torch.autograd.Function):
        @staticmethod
        def forward(ctx, theta, num_samples, sigma):
            z = torch.randn((num_samples, *theta.shape), dtype=theta.dtype)
            y = _torch_argmax((theta + sigma * z).reshape(-1, theta.shape[-1])).reshape(z.shape)
            ctx.save_for_backward(y, z)
            ctx.sigma = sigma
            return y.mean(0)

        @staticmethod
        def backward(ctx, dy):
            y, z = ctx.saved_tensors
            s = (y * dy).sum(-1)
            return torch.einsum("nb,nbd->bd", s, z) / (ctx.sigma * y.shape[0]), None, None

    return PortNormal


def _contention(h: Any) -> None:
    """256x100 argmax, normal noise, N = 1000 and 3000: refimpl on torch against the naive
    unchunked torch loop, and the front end's forward + backward against the port's
    unchunked algorithm (``--load N``: under N busy processes)."""
    import torch

    import refimpl.torch as bt
    from refimpl.perturbed import argmax_one_hot, perturbed

    b, d = (16, 10) if h.quick else (256, 100)
    theta = torch.randn(b, d, generator=torch.Generator().manual_seed(0))
    u = torch.randn(b, d, generator=torch.Generator().manual_seed(1))
    port = _naive_port_normal()
    load = f", {h.load} busy processes" if h.load else ", no added load"
    for n in (100, 300) if h.quick else (1000, 3000):
        title = f"argmax {b}x{d} normal N={n} value+vjp{load}"
        ours = perturbed(argmax_one_hot, num_samples=n, sigma=SIGMA, rng=0, progress=False)
        g = torch.Generator().manual_seed(0)
        rows = h.compare(
            title,
            {"refimpl torch value_and_vjp": lambda ours=ours: ours.value_and_vjp(theta, u)},
            original=(
                "naive unchunked torch",
                lambda n=n, g=g: _naive_value_and_vjp(theta, u, n, SIGMA, g),
            ),
        )
        h.printer(
            f"  goal: refimpl on torch <= 1.2x the naive loop at N={n}{load}: "
            f"{rows[1].ratio:.2f}x ({'met' if rows[1].ratio <= 1.2 else 'NOT met'})"
        )
        title = f"argmax {b}x{d} normal N={n} fwd+bwd{load}"
        front = bt.perturbed(_torch_argmax, num_samples=n, sigma=SIGMA,
                             generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
        rows = h.compare(
            title,
            {"refimpl.torch.perturbed fwd+bwd": _forward_backward(front, theta)},
            original=(
                "port algorithm, unchunked torch",
                _forward_backward(lambda t, n=n: port.apply(t, n, SIGMA), theta),
            ),
        )
        h.printer(
            f"  goal: the front end's fwd+bwd <= 1.5x the unchunked port at N={n}{load}: "
            f"{rows[1].ratio:.2f}x ({'met' if rows[1].ratio <= 1.5 else 'NOT met'}); peak "
            f"{rows[1].peak_bytes / 2**20:.0f} MiB against {rows[0].peak_bytes / 2**20:.0f} MiB"
        )


def rmse_table(seeds: int = 32, n: int = 1024) -> dict[tuple[str, bool], float]:
    """RMSE of the Jacobian estimate vs the exact softmax Jacobian (2x5 argmax, Gumbel)."""
    from refimpl.perturbed import argmax_one_hot, perturbed

    theta = np.asarray(THETA_BATCH)
    t = theta / SIGMA
    p = np.exp(t - t.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    exact = (np.einsum("bi,ij->bij", p, np.eye(5)) - p[:, :, None] * p[:, None, :]) / SIGMA
    out = {}
    for sampling, baseline in MODES:
        errs = []
        for seed in range(seeds):
            est = perturbed(argmax_one_hot, num_samples=n, sigma=SIGMA, noise="gumbel", rng=seed,
                            sampling=sampling, baseline=baseline).jacobian(theta)  # fmt: skip
            errs.append(np.mean((est - exact) ** 2))
        out[(sampling, baseline)] = math.sqrt(np.mean(errs))
    return out


def _rmse(h: Any) -> None:
    seeds = 4 if h.quick else 32
    table = {}
    rows = h.compare(
        f"Jacobian RMSE table, 2x5, N=1024, {seeds} seeds x 6 options",
        {"refimpl numpy": lambda: table.update(rmse_table(seeds))},
    )
    del rows
    plain = table[("mc", False)]
    h.printer(
        f"  Jacobian RMSE vs exact softmax Jacobian (2x5, sigma 0.5, N 1024, Gumbel, {seeds} seeds)"
    )
    h.printer("  sampling     baseline  RMSE     plain / RMSE")
    for (sampling, baseline), value in table.items():
        h.printer(f"  {sampling:<11}  {str(baseline):<8}  {value:.4f}   {plain / value:.2f}x")
    best = min(table, key=table.get)
    h.printer(
        f"  best: {best[0]} baseline={best[1]}, {plain / table[best]:.2f}x below plain (goal >= 2.5x)"
    )


def run(h: Any) -> None:
    _contention(h)
    _small(h)
    _large(h)
    _rmse(h)
