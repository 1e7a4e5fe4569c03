"""Noise tunnel (SmoothGrad / SmoothGrad² / VarGrad of Saliency) on a conv net and an MLP,
against the physical limit.

Setup (the scale of captum 0.9's own NoiseTunnel benchmarks): inputs 32 x 3 x 64 x 64, ``nt_samples=50``,
``nt_samples_batch_size=8`` (7 chunks: 6 x 8 + 1 x 2, forward batches of 256 and 64 rows),
``stdevs=0.15``, per-example targets ``arange(32) % 10``; weights seeded with 0.

* conv: Conv(3->16, 3x3, pad 1)-ReLU-MaxPool2-Conv(16->32, 3x3, pad 1)-ReLU-GlobalAvgPool-
  Linear(32->10)
* mlp: Flatten-Linear(12288->256)-ReLU-Linear(256->10)

Compared, for each nt_type, side by side with interleaved repeats (one call of each in turn,
per repeat; medians): the *physical limit*, ``nt_samples`` forward+backward passes of the
batch in a plain torch loop with no noise-tunnel machinery (``x = inputs + noise; out =
model(x); grad = autograd.grad(out[rows, target].sum(), x)``); captum 0.9 (the ratios'
reference); the ``refimpl.torch`` front end (chunk-independent noise, Welford VarGrad) with
an int seed, with ``nt_samples_batch_size=1`` (the plain loop's passes: one of B rows per
sample), and with a key (``numpy.random.SeedSequence``: the tasks of a keyed run, here);
and its ``captum_compatible=True`` mode (checked bit-identical to captum before timing).

The goal lines compare runs that make the same model calls: the front end with batch 1 at
most 1.1x the plain loop (the machinery's cost), and with batch 8 at most 1.0x captum with
batch 8. Larger batches are not free: on a 2-core CPU the conv net's passes of 256 rows
cost about 1.8x per row those of 32 (its activations leave the cache; measured on one
thread), while the MLP's matrix products gain from them, so with batch 8 captum and the
front end alike are slower than the plain loop on the conv net of a quiet machine.
Then ``refimpl`` on numpy with an explicit-Jacobian model of the same weights
(``refimpl.models`` plus the max-pool and global-average-pool layers below, no autograd):
one run of VarGrad, its ratio against captum's VarGrad median.

``--quick``: 2 x 3 x 8 x 8 inputs, 3 samples in chunks of 2, VarGrad only.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import Harness, Row

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return dict(batch=2, side=8, n=3, bs=2)
    return dict(batch=32, side=64, n=50, bs=8)


def torch_models(side: int) -> dict[str, Any]:
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    conv = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Flatten(), nn.Linear(3 * side * side, 256), nn.ReLU(), nn.Linear(256, 10)
    ).eval()
    return {"conv": conv, "mlp": mlp}


# -- explicit-Jacobian layers the refimpl model needs (array API, no autograd) ---------------
class MaxPool2:
    """2x2 max pooling on (..., C, H, W): J^T u puts u on each window's maximum (on ties, on
    every maximum; in a ReLU net ties are zeros whose gradient the ReLU removes anyway)."""

    def __call__(self, x: Any) -> Any:
        return self.linearize(x).y

    def linearize(self, x: Any) -> Any:
        from backends import namespace_and_device
        from refimpl.models import Linearization

        xp, _ = namespace_and_device(x)
        *lead, c, h, w = x.shape
        win = xp.reshape(x, (*lead, c, h // 2, 2, w // 2, 2))
        y = xp.max(xp.max(win, axis=-1), axis=-2)
        mask = xp.astype(win == y[..., None, :, None], x.dtype)

        def vjp(u: Any) -> Any:
            g = mask * u[..., None, :, None]
            return xp.reshape(g, (*u.shape[:-2], h, w))

        def jvp(v: Any) -> Any:
            vw = xp.reshape(v, (*v.shape[:-2], h // 2, 2, w // 2, 2))
            return xp.max(xp.max(mask * vw, axis=-1), axis=-2)  # exact without ties

        return Linearization(x, y, jvp, vjp)


class GlobalAvgPool:
    """(..., C, H, W) -> (..., C): the mean over H, W; J^T u = u / (H W) on every pixel."""

    def __call__(self, x: Any) -> Any:
        return self.linearize(x).y

    def linearize(self, x: Any) -> Any:
        from backends import namespace_and_device
        from refimpl.models import Linearization

        xp, _ = namespace_and_device(x)
        h, w = x.shape[-2:]
        y = xp.mean(x, axis=(-2, -1))
        return Linearization(
            x,
            y,
            lambda v: xp.mean(v, axis=(-2, -1)),
            lambda u: xp.broadcast_to(u[..., None, None] / (h * w), (*u.shape, h, w)),
        )


def refimpl_model(name: str, net: Any) -> Any:
    """The same network from ``refimpl.models`` (float32 numpy weights from ``net``)."""
    from refimpl import models as rm

    p = [t.detach().numpy().astype(np.float32) for t in net.parameters()]
    if name == "conv":
        return rm.Sequential(
            rm.Conv2d(p[0], p[1], pad_mode="constant"),
            rm.Pointwise("relu"),
            MaxPool2(),
            rm.Conv2d(p[2], p[3], pad_mode="constant"),
            rm.Pointwise("relu"),
            GlobalAvgPool(),
            rm.Linear(p[4], p[5]),
        )
    return rm.Sequential(
        rm.Flatten(3), rm.Linear(p[0], p[1]), rm.Pointwise("relu"), rm.Linear(p[2], p[3])
    )


def plain_loop(net: Any, x: Any, target: Any, n: int, stdev: float) -> Callable[[], None]:
    """The physical limit: ``n`` forward+backward passes of the batch, noise drawn per pass,
    nothing else (no chunking, no accumulation, no checks)."""
    import torch

    rows = torch.arange(x.shape[0])
    g = torch.Generator().manual_seed(0)

    def run() -> None:
        for _ in range(n):
            noisy = (x + torch.normal(0.0, stdev, x.shape, generator=g)).requires_grad_()
            out = net(noisy)
            torch.autograd.grad(out[rows, target].sum(), noisy)

    return run


PLAIN = "plain torch loop (the limit)"
CAPTUM = "captum (original)"
FRONT = "refimpl.torch front end"


def _calls(
    net: Any, x: Any, target: Any, nt_type: str, kw: dict, ca: Any
) -> dict[str, Callable[[], Any]]:
    """The calls compared for one nt_type: the plain loop, captum (when installed), the front
    end (batch of the setup, batch 1, keyed) and captum_compatible (checked against
    captum)."""
    import torch

    import refimpl.torch.attr as bta

    front = bta.NoiseTunnel(bta.Saliency(net))
    compat = bta.NoiseTunnel(bta.Saliency(net), captum_compatible=True)
    kw = dict(kw, nt_type=nt_type)
    fns: dict[str, Callable[[], Any]] = {
        PLAIN: plain_loop(net, x, target, kw["nt_samples"], kw["stdevs"])
    }
    if ca is not None:
        nt = ca.NoiseTunnel(ca.Saliency(net))

        def captum_call() -> Any:
            torch.manual_seed(0)
            return nt.attribute(x, **kw)

        fns[CAPTUM] = captum_call
    fns[FRONT] = lambda: front.attribute(x, rng=0, progress=False, **kw)
    fns[f"{FRONT}, batch 1"] = lambda: front.attribute(
        x, rng=0, progress=False, **dict(kw, nt_samples_batch_size=1)
    )
    fns[f"{FRONT}, keyed"] = lambda: front.attribute(
        x, rng=np.random.SeedSequence(0), progress=False, **kw
    )
    fns["refimpl.torch captum_compatible"] = lambda: compat.attribute(x, rng=0, **kw)
    if ca is not None and not torch.equal(fns["refimpl.torch captum_compatible"](), fns[CAPTUM]()):
        raise AssertionError(f"{nt_type}: captum_compatible != captum")
    return fns


def interleaved(
    h: Harness, title: str, fns: dict[str, Callable[[], Any]], note: str = ""
) -> dict[str, Row]:
    """``h.warmup`` untimed rounds, then ``h.repeats`` timed rounds, each calling every
    ``fn`` once in turn (so that a change of the machine's load hits them all alike); then
    the peak memory of one more call of each. Rows in ``h.rows``, by label."""
    times: dict[str, list[float]] = {label: [] for label in fns}
    for round_ in range(h.warmup + h.repeats):
        for label, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if round_ >= h.warmup:
                times[label].append(time.perf_counter() - t0)
    rows = {
        label: Row(title, label, times[label], h.peak_memory(fn), note=note)
        for label, fn in fns.items()
    }
    h.rows.extend(rows.values())
    return rows


def goal(h: Harness, text: str, ratio: float, limit: float) -> None:
    met = "met" if ratio <= limit else "NOT met"
    h.printer(f"goal: {text}: {ratio:.2f}x (goal <= {limit:g}x) {met}")


def run(h: Harness) -> None:
    import torch

    from refimpl import attr as ra

    s = _sizes(h.quick)
    b, n, bs = s["batch"], s["n"], s["bs"]
    x = torch.randn(b, 3, s["side"], s["side"], generator=torch.Generator().manual_seed(1))
    target = torch.arange(b) % 10
    ca = None
    if importlib.util.find_spec("captum") is not None:
        warnings.filterwarnings("ignore", module="captum")
        import captum.attr as ca
    x_np = x.numpy()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    goals: list[tuple[str, float, float]] = []
    for name, net in torch_models(s["side"]).items():
        model = refimpl_model(name, net)
        with torch.no_grad():  # the explicit-Jacobian model is the same network
            np.testing.assert_allclose(model(x_np[:2]), net(x[:2]).numpy(), rtol=1e-4, atol=1e-5)
        kw = dict(nt_samples=n, nt_samples_batch_size=bs, stdevs=0.15, target=target)
        captum_vargrad = None
        for nt_type in NT_TYPES if not h.quick else ("vargrad",):
            fns = _calls(net, x, target, nt_type, kw, ca)
            title = f"{name} {nt_type}"
            rows = interleaved(
                h, title, fns, note=f"{b}x3x{s['side']}x{s['side']}, n={n}, batch {bs}"
            )
            limit = rows[PLAIN].median
            same_passes, ours = rows[f"{FRONT}, batch 1"], rows[FRONT]
            goals.append(
                (f"{title}: {FRONT} / plain torch loop, the same passes (batch 1; "
                 f"{ours.median / limit:.2f}x with batch {bs})", same_passes.median / limit, 1.1)
            )  # fmt: skip
            reference = rows.get(CAPTUM)
            if reference is not None:
                reference.is_original = True
                for row in rows.values():
                    if row is not reference:
                        row.ratio = row.median / reference.median
                goals.append((f"{title}: {FRONT} / captum (batch {bs})", ours.ratio, 1.0))
                if nt_type == "vargrad":
                    captum_vargrad = reference.median
        # refimpl on numpy, explicit Jacobians: one run, timed during its memory measurement
        # (a direct 3x3 convolution written in the array API standard, no im2col/GEMM: slow,
        # but no autograd anywhere)
        nt_np = ra.NoiseTunnel(ra.Saliency(model))
        target_np = target.numpy()

        def numpy_call(nt_np: Any = nt_np, target_np: Any = target_np) -> Any:
            return nt_np.attribute(
                x_np, nt_type="vargrad", nt_samples=n, nt_samples_batch_size=bs, stdevs=0.15,
                target=target_np, rng=0, progress=False,
            )  # fmt: skip

        seconds: list[float] = []

        def timed(call: Any = numpy_call, seconds: list = seconds) -> None:
            t0 = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - t0)

        peak = h.peak_memory(timed)  # the call is timed inside (memory tracing on)
        row = Row(
            f"{name} vargrad",
            "refimpl numpy, explicit Jacobians (1 run)",
            seconds,
            peak,
            note="numpy float32",
        )
        if captum_vargrad is not None:
            row.ratio = row.median / captum_vargrad
        h.rows.append(row)
    load = max(load, os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
    h.printer(
        f"\nnoise tunnel goals (medians of {h.repeats} interleaved repeats; {os.cpu_count()} "
        f"cores, load up to {load:.1f}, torch threads {torch.get_num_threads()}):"
    )
    for text, ratio, limit in goals:
        goal(h, text, ratio, limit)
    if ca is None:
        h.printer("goal: refimpl.torch front end / captum: captum not installed, not measured")
