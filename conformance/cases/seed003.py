"""Seed 003: captum's ``NoiseTunnel`` (SmoothGrad, SmoothGrad², VarGrad).

Source: the captum 0.9.0 documentation of ``captum.attr.NoiseTunnel`` (the docstring and its
example); captum 0.9.0's behaviour from its source, ``captum/attr/_core/noise_tunnel.py``.

The cases call the target operations ``noise_tunnel`` and ``captum_noise_tunnel``
(``conformance/targets/base.py``) with the models below (:class:`Model`).

Columns
    numpy, array_api_strict, torch: ``refimpl.attr`` (NoiseTunnel around Saliency /
    IntegratedGradients on explicit-Jacobian models of ``refimpl.models``); on torch also the
    front end ``refimpl.torch.attr`` on ``nn.Module`` equivalents (autograd).
    captum: the documented library itself, on the same modules.

The identities (stdevs = 0, a linear model, f(x) = sum x^2) hold on every column. Where the
docstring and captum disagree (one delta per example vs one per noisy sample; batch size as
a memory knob vs a result-changing choice; "the variance" vs a float32 cancellation that
goes negative) the cases are ERRATA: they check captum's actual behaviour on the captum
column and on the torch front end's ``captum_compatible=True`` mode, and this project's
fixed behaviour in separate cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends import namespace_and_device
from conformance.registry import Context, case, erratum, exact, statistical, tolerance
from conformance.targets import NoiseTunnelRun

SEED = "captum 0.9.0 docs, captum.attr.NoiseTunnel"
SOURCE = "captum 0.9.0 attr/_core/noise_tunnel.py"
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


# -- the models: numpy weights; refimpl (explicit Jacobians) and torch versions ------------
class _SumSquares:
    """f(x) = sum_i x_i^2 over the last axis: gradient 2x."""

    def __call__(self, x: Any) -> Any:
        xp, _ = namespace_and_device(x)
        return xp.sum(x * x, axis=-1)

    def jvp(self, x: Any, v: Any) -> Any:
        xp, _ = namespace_and_device(x)
        return xp.sum(2 * x * v, axis=-1)

    def vjp(self, x: Any, u: Any) -> Any:
        return 2 * x * u[..., None]


class _QuadLin:
    """f(x) = sum_i (w x_i + eps x_i^2 / 2): gradient w + eps x (large mean/sd: the float32
    VarGrad cases)."""

    def __init__(self, w: float, eps: float) -> None:
        self.w, self.eps = w, eps

    def __call__(self, x: Any) -> Any:
        xp, _ = namespace_and_device(x)
        return xp.sum(self.w * x + 0.5 * self.eps * x * x, axis=-1)

    def jvp(self, x: Any, v: Any) -> Any:
        xp, _ = namespace_and_device(x)
        return xp.sum((self.w + self.eps * x) * v, axis=-1)

    def vjp(self, x: Any, u: Any) -> Any:
        return (self.w + self.eps * x) * u[..., None]


class _Softmax:
    """Softmax on the last axis: J^T u = y (u - <u, y>) (J is symmetric)."""

    def __call__(self, x: Any) -> Any:
        xp, _ = namespace_and_device(x)
        e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
        return e / xp.sum(e, axis=-1, keepdims=True)

    def vjp(self, x: Any, u: Any) -> Any:
        xp, _ = namespace_and_device(x)
        y = self(x)
        return y * (u - xp.sum(u * y, axis=-1, keepdims=True))

    jvp = vjp


_W = np.random.default_rng(3).standard_normal((3, 5))
_B = np.random.default_rng(4).standard_normal(3)
_W1 = np.random.default_rng(5).standard_normal((4, 5)) * 0.7
_W2 = np.random.default_rng(6).standard_normal((3, 4))
_CONV = np.random.default_rng(7).standard_normal((2, 3, 3, 3)) * 0.3
_CONV_B = np.random.default_rng(8).standard_normal(2) * 0.1
_FC = np.random.default_rng(9).standard_normal((10, 2 * 32 * 32)) * 0.03


def _refimpl_model(asarray: Callable[[Any], Any], name: str) -> Any:
    from refimpl import models as rm

    a = asarray
    if name == "linear":
        return rm.Linear(a(_W), a(_B))
    if name == "mlp":
        return rm.Sequential(rm.Linear(a(_W1)), rm.Pointwise("tanh"), rm.Linear(a(_W2)))
    if name == "square":
        return _SumSquares()
    if name.startswith("quadlin"):
        return _QuadLin(*_QUADLIN[name])
    if name == "classifier":
        return rm.Sequential(
            rm.Conv2d(a(_CONV), a(_CONV_B), pad_mode="constant"),
            rm.Pointwise("relu"),
            rm.Flatten(3),
            rm.Linear(a(_FC)),
            _Softmax(),
        )
    raise KeyError(name)


def _torch_model(name: str) -> Any:
    import torch

    t = lambda w: torch.tensor(w, dtype=torch.float32)  # noqa: E731
    if name == "linear":
        lin = torch.nn.Linear(5, 3)
        with torch.no_grad():
            lin.weight.copy_(t(_W))
            lin.bias.copy_(t(_B))
        return lin.eval()
    if name == "mlp":
        net = torch.nn.Sequential(
            torch.nn.Linear(5, 4, bias=False), torch.nn.Tanh(), torch.nn.Linear(4, 3, bias=False)
        )
        with torch.no_grad():
            net[0].weight.copy_(t(_W1))
            net[2].weight.copy_(t(_W2))
        return net.eval()
    if name == "square":
        return lambda x: (x * x).sum(-1)
    if name.startswith("quadlin"):
        w, eps = _QUADLIN[name]
        return lambda x: (w * x + 0.5 * eps * x * x).sum(-1)
    if name == "classifier":
        conv = torch.nn.Conv2d(3, 2, 3, padding=1)
        fc = torch.nn.Linear(2 * 32 * 32, 10, bias=False)
        with torch.no_grad():
            conv.weight.copy_(t(_CONV))
            conv.bias.copy_(t(_CONV_B))
            fc.weight.copy_(t(_FC))
        net = torch.nn.Sequential(
            conv, torch.nn.ReLU(), torch.nn.Flatten(), fc, torch.nn.Softmax(dim=-1)
        )
        return net.eval()
    raise KeyError(name)


_QUADLIN = {"quadlin": (100.0, 0.01)}  # mean/sd of the gradient = w / (eps sigma) = 1e4


@dataclass(frozen=True)
class Model:
    """A model of the cases by name, built for each implementation: ``refimpl(asarray)`` (an
    explicit-Jacobian model of ``refimpl.models``) or ``torch()`` (an ``nn.Module``)."""

    name: str

    def refimpl(self, asarray: Callable[[Any], Any]) -> Any:
        return _refimpl_model(asarray, self.name)

    def torch(self) -> Any:
        return _torch_model(self.name)


@dataclass
class Impl:
    """One implementation of a column: build a noise tunnel, run it with a seed
    (``compat``: captum's released behaviour, for the errata)."""

    target: Any
    compat: bool = False

    @property
    def label(self) -> str:
        return self.target.label

    def make(self, method: str, model: str, kw: dict) -> NoiseTunnelRun:
        if self.compat:
            return self.target.captum_noise_tunnel(method, Model(model))
        return self.target.noise_tunnel(method, Model(model), **kw)

    def asarray(self, a: Any) -> Any:
        return self.target.asarray(np.asarray(a), "float32")

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.target.to_numpy(a)

    def run(self, nt: NoiseTunnelRun, x: Any, seed: int, **kw: Any) -> Any:
        return nt.attribute(x, seed, **kw)


def _impls(ctx: Context, *, compat: bool = False) -> list[Impl]:
    """The implementations a column offers (``compat``: captum's behaviour, for errata)."""
    op = "captum_noise_tunnel" if compat else "noise_tunnel"
    return [Impl(t, compat) for t in ctx.implementations(op)]


def _compat_impls(ctx: Context) -> list[Impl]:
    """The captum_compatible modes of this project's implementations on the column."""
    impls = ctx.target.implementations()
    return [
        Impl(t, True) for t in impls if t.kind != "original" and t.supports("captum_noise_tunnel")
    ]


# -- the docstring example -----------------------------------------------------------------
@case(
    "003.noise_tunnel.docstring",
    source=f"{SEED}, Examples (ImageClassifier, IntegratedGradients, smoothgrad, 10 samples)",
    component="refimpl.attr.NoiseTunnel + IntegratedGradients",
    check=tolerance(rtol=1e-4, atol=1e-7),
    originals=("captum",),
)
def docstring(ctx: Context) -> None:
    """N x 3 x 32 x 32 images, IG for class 3, smoothgrad over 10 noisy copies: shape, type,
    and the average of IG over the noisy inputs"""
    x0 = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    for impl in _impls(ctx):
        x = impl.asarray(x0)
        nt = impl.make("IntegratedGradients", "classifier", {})
        if nt.native_torch:
            x.requires_grad_(True)  # as in the docstring
        rec = _Recorder(nt.attribution_method)
        if nt.wrappable:
            nt.attribution_method = rec  # sees the noisy batch the tunnel builds
        out = impl.run(nt, x, 11, nt_type="smoothgrad", nt_samples=10, target=3)
        if type(out) is not type(x) or tuple(out.shape) != (2, 3, 32, 32):
            raise AssertionError(f"{impl.label}: got {type(out).__name__} {tuple(out.shape)}")
        if out.dtype != x.dtype or _device(out) != _device(x):
            raise AssertionError(f"{impl.label}: dtype/device {out.dtype}/{_device(out)}")
        got = impl.to_numpy(out)
        if not np.all(np.isfinite(got)):
            raise AssertionError(f"{impl.label}: non-finite attributions")
        # "averages attributions across all 10 perturbed inputs per image"
        if nt.wrappable:
            noisy = rec.inputs[0]
        else:  # captum itself: its documented recipe
            noisy = _captum_noise(x.detach(), 11, [10], 1.0)
        ig = nt.attribution_method.attribute(noisy, target=3)
        mean = impl.to_numpy(ig).reshape(2, 10, 3, 32, 32).mean(axis=1)
        ctx.assert_close(got, mean, f"{impl.label}: smoothgrad vs mean of IG over the noisy rows")


class _Recorder:
    """Wraps an attribution method and keeps the inputs the noise tunnel passes to it."""

    def __init__(self, method: Any) -> None:
        self.method, self.inputs = method, []
        self.multiplies_by_inputs = getattr(method, "multiplies_by_inputs", False)
        self.forward_func = getattr(method, "forward_func", None)

    def has_convergence_delta(self) -> bool:
        return self.method.has_convergence_delta()

    def attribute(self, inputs: Any, **kw: Any) -> Any:
        self.inputs.append(inputs)
        return self.method.attribute(inputs, **kw)


def _device(a: Any) -> Any:
    return namespace_and_device(a)[1]


def _captum_noise(x: Any, seed: int, chunks: list[int], stdev: float) -> Any:
    """captum 0.9's noisy rows for one input (``_add_noise_to_input``), all chunks concatenated:
    per chunk of k samples, ``x.repeat_interleave(k) + stdev * randn((B*k, ...))``."""
    import torch

    torch.manual_seed(seed)
    rows = []
    for k in chunks:
        z = torch.randn((x.shape[0] * k, *x.shape[1:]), dtype=torch.float32, device=x.device)
        rows.append(x.repeat_interleave(k, dim=0) + stdev * z)
    return torch.cat(rows)


# -- the defining identities ----------------------------------------------------------------
_X5 = np.random.default_rng(1).standard_normal((3, 5))


@case(
    "003.noise_tunnel.stdevs_zero",
    source=f"{SEED}, NoiseTunnel (mean / mean of squares / variance of the sampled attributions)",
    component="refimpl.attr.NoiseTunnel",
    check=tolerance(rtol=1e-5, atol=1e-6),
    originals=("captum",),
)
def stdevs_zero(ctx: Context) -> None:
    """stdevs=0: smoothgrad = A(x), smoothgrad_sq = A(x)^2, vargrad = 0 (Saliency, IG + delta)"""
    for impl in _impls(ctx):
        x = impl.asarray(_X5)
        sal = impl.make("Saliency", "mlp", {})
        plain = impl.to_numpy(sal.attribution_method.attribute(x, target=[0, 1, 2], abs=False))
        expect = {"smoothgrad": plain, "smoothgrad_sq": plain**2, "vargrad": 0 * plain}
        for t in NT_TYPES:
            out = impl.run(
                sal, x, 0, nt_type=t, nt_samples=6, nt_samples_batch_size=4, stdevs=0.0,
                target=[0, 1, 2], abs=False,
            )  # fmt: skip
            ctx.assert_close(impl.to_numpy(out), expect[t], f"{impl.label} {t}")
        ig = impl.make("IntegratedGradients", "mlp", {})
        a, d = ig.attribution_method.attribute(x, target=1, return_convergence_delta=True)
        out, delta = impl.run(
            ig, x, 0, nt_samples=4, stdevs=0.0, target=1, return_convergence_delta=True
        )
        ctx.assert_close(impl.to_numpy(out), impl.to_numpy(a), f"{impl.label} smoothgrad(IG)")
        ctx.assert_close(
            impl.to_numpy(delta), np.repeat(impl.to_numpy(d), 4), f"{impl.label} IG deltas"
        )


@case(
    "003.smoothgrad.linear_model",
    source=f"{SEED}, smoothgrad approximates smoothing with a Gaussian kernel",
    component="refimpl.attr.NoiseTunnel + Saliency",
    check=tolerance(rtol=1e-5, atol=1e-5),
    originals=("captum",),
)
def linear_model(ctx: Context) -> None:
    """f(x) = W x + b, Saliency(abs=False), stdevs=1: smoothgrad = W[t], smoothgrad_sq = W[t]^2,
    vargrad = 0 (the gradient of a linear model is constant)"""
    target = [0, 2, 1]
    rows = _W[target]
    expect = {"smoothgrad": rows, "smoothgrad_sq": rows**2, "vargrad": 0 * rows}
    for impl in _impls(ctx):
        nt = impl.make("Saliency", "linear", {})
        for t in NT_TYPES:
            out = impl.run(
                nt, impl.asarray(_X5), 1, nt_type=t, nt_samples=16, nt_samples_batch_size=5,
                stdevs=1.0, target=target, abs=False,
            )  # fmt: skip
            ctx.assert_close(impl.to_numpy(out), expect[t], f"{impl.label} {t}")


QUAD_N, QUAD_SIGMA, QUAD_P = 64, 0.5, 1e-6
_XQ = np.random.default_rng(2).standard_normal((2, 32))


def quadratic_bounds(x: np.ndarray, n: int, sigma: float, p: float) -> dict[str, tuple]:
    """Exact two-sided (1 - p') intervals per element for f(x) = sum x^2, a = 2(x + e),
    e ~ N(0, sigma^2), n samples, p' = p / (3 * x.size) (Bonferroni over the elements and
    the three statistics):

    * smoothgrad = 2x + 2 mean(e) ~ N(2x, 4 sigma^2 / n);
    * smoothgrad_sq: n sg_sq / (4 sigma^2) = sum ((x + e_j) / sigma)^2 ~ ncx2(n, n x^2/sigma^2);
    * vargrad: n vg / (4 sigma^2) ~ chi2(n - 1) (population variance of 2 e_j).
    """
    from scipy import stats

    q = p / (3 * x.size) / 2
    z = stats.norm.isf(q)
    half = z * 2 * sigma / np.sqrt(n)
    scale = 4 * sigma**2 / n
    nc = n * x**2 / sigma**2
    return {
        "smoothgrad": (2 * x - half, 2 * x + half),
        "smoothgrad_sq": (
            stats.ncx2.ppf(q, n, nc) * scale,
            stats.ncx2.isf(q, n, nc) * scale,
        ),
        "vargrad": (stats.chi2.ppf(q, n - 1) * scale, stats.chi2.isf(q, n - 1) * scale),
    }


@case(
    "003.smoothgrad.quadratic_moments",
    source=f"{SEED}, smoothgrad / smoothgrad_sq / vargrad definitions",
    component="refimpl.attr.NoiseTunnel + Saliency",
    check=statistical(QUAD_P),
    originals=("captum",),
)
def quadratic_moments(ctx: Context) -> None:
    """f(x) = sum x^2: E[2(x+e)] = 2x, E[4(x+e)^2] = 4x^2 + 4 sigma^2, Var = 4 sigma^2, each
    inside its exact interval (n=64, sigma=0.5, Bonferroni over 64 elements x 3 statistics)"""
    bounds = quadratic_bounds(_XQ, QUAD_N, QUAD_SIGMA, QUAD_P)
    for impl in _impls(ctx):
        nt = impl.make("Saliency", "square", {})
        for t in NT_TYPES:
            out = impl.to_numpy(
                impl.run(
                    nt, impl.asarray(_XQ), 5, nt_type=t, nt_samples=QUAD_N,
                    nt_samples_batch_size=24, stdevs=QUAD_SIGMA, abs=False,
                )
            )  # fmt: skip
            lo, hi = bounds[t]
            bad = ~((out >= lo) & (out <= hi))
            if bad.any():
                i = np.unravel_index(np.argmax(bad), bad.shape)
                raise AssertionError(
                    f"{impl.label} {t}: {bad.sum()} of {bad.size} outside the interval, e.g. "
                    f"{out[i]:.6g} not in [{lo[i]:.6g}, {hi[i]:.6g}]"
                )


# -- chunk size: independent here, a result-changing choice in captum -----------------------
CHUNKS = (None, 1, 2, 3, 5, 7)


@case(
    "003.noise_tunnel.chunk_independence",
    source=f"{SEED}, nt_samples_batch_size (processes samples together to avoid running out "
    "of memory)",
    component="refimpl.attr.NoiseTunnel",
    check=exact(),
)
def chunk_independence(ctx: Context) -> None:
    """fixed seed, nt_samples=7: identical maps for every nt_samples_batch_size (deltas to
    1e-5: the model's forward sums round differently with the number of rows)"""
    x0 = np.random.default_rng(3).standard_normal((3, 5))
    for impl in _impls(ctx):
        x = impl.asarray(x0)
        nt = impl.make("Saliency", "square", {})
        for t in NT_TYPES:
            ref = impl.to_numpy(impl.run(nt, x, 9, nt_type=t, nt_samples=7, stdevs=0.4))
            for bs in CHUNKS[1:]:
                out = impl.run(
                    nt, x, 9, nt_type=t, nt_samples=7, nt_samples_batch_size=bs, stdevs=0.4
                )
                ctx.assert_close(impl.to_numpy(out), ref, f"{impl.label} {t} batch size {bs}")
        ig = impl.make("IntegratedGradients", "square", {})
        _, ref = impl.run(ig, x, 9, nt_samples=7, stdevs=0.4, return_convergence_delta=True)
        for bs in CHUNKS[1:]:
            _, d = impl.run(
                ig, x, 9, nt_samples=7, nt_samples_batch_size=bs, stdevs=0.4,
                return_convergence_delta=True,
            )  # fmt: skip
            ctx.assert_close(  # f(x) - f(x') rounds differently with the row count
                impl.to_numpy(d), impl.to_numpy(ref), f"{impl.label} delta bs {bs}", atol=1e-5
            )


@case(
    "003.captum.chunk_dependence",
    source=f"{SEED}, nt_samples_batch_size; {SOURCE} (noise per chunk, rows b*k + j)",
    component="captum.attr.NoiseTunnel (refimpl.torch captum_compatible=True)",
    check=erratum(
        "the docstring presents nt_samples_batch_size as a way to avoid running out of memory, "
        "but captum draws the noise per chunk in example-major order (std * randn((B*k, ...)) "
        "per chunk and input), so the same torch seed gives a different map for every batch "
        "size. Checked: captum (and captum_compatible=True) equals that per-chunk recipe and "
        "differs between batch sizes; this project's default draws are chunk-independent "
        "(003.noise_tunnel.chunk_independence)",
        rtol=1e-6,
        atol=1e-6,
    ),
    originals=("captum",),
    backends=("torch",),
)
def captum_chunk_dependence(ctx: Context) -> None:
    """same seed, nt_samples=7, batch size None vs 2 vs 3: captum's per-chunk recipe"""
    x0 = np.random.default_rng(3).standard_normal((3, 5))
    for impl in _impls(ctx, compat=True):
        x = impl.asarray(x0)
        nt = impl.make("Saliency", "square", {})
        outs = {}
        for bs, chunks in ((None, [7]), (2, [2, 2, 2, 1]), (3, [3, 3, 1])):
            out = impl.to_numpy(
                impl.run(nt, x, 9, nt_samples=7, nt_samples_batch_size=bs, stdevs=0.4, abs=False)
            )
            rows = _captum_noise(impl.asarray(x0), 9, chunks, 0.4).cpu().numpy()
            per_chunk, start = [], 0  # each chunk's rows are example-major: b*k + j
            for k in chunks:
                per_chunk.append(rows[start : start + 3 * k].reshape(3, k, 5))
                start += 3 * k
            recipe = (2 * np.concatenate(per_chunk, axis=1).astype(np.float64)).mean(axis=1)
            ctx.assert_close(out, recipe, f"{impl.label} bs={bs} vs the per-chunk recipe")
            outs[bs] = out
        for bs in (2, 3):
            if np.max(np.abs(outs[bs] - outs[None])) < 0.05:
                raise AssertionError(f"{impl.label}: batch size {bs} did not change the result")


# -- VarGrad in float32 at mean/sd = 1e4 ----------------------------------------------------
VAR_SHAPE, VAR_N, VAR_BS = (4, 500), 50, 8


def _vargrad_reference(noisy_rows: np.ndarray, w: float, eps: float, batch: int) -> np.ndarray:
    """float64 two-pass population variance of w + eps (x + e) over the same noisy rows."""
    a = (w + eps * noisy_rows.astype(np.float64)).reshape(batch, -1, noisy_rows.shape[-1])
    return a.var(axis=1)


@case(
    "003.vargrad.float32_stable",
    source=f"{SEED}, vargrad (variance of the sample attributions); gradient mean/sd 1e4",
    component="refimpl.attr.NoiseTunnel (Welford VarGrad)",
    check=tolerance(rtol=0.05, atol=0.0),
)
def vargrad_float32(ctx: Context) -> None:
    """gradient w + eps x with w=100, eps=0.01, sigma=1 (mean/sd 1e4), float32: VarGrad
    within 5% of the float64 variance of the same samples, median within 1%, never < 0"""
    w, eps = _QUADLIN["quadlin"]
    x0 = np.random.default_rng(4).standard_normal(VAR_SHAPE)
    for impl in _impls(ctx):
        nt = impl.make("Saliency", "quadlin", {})
        rec = _Recorder(nt.attribution_method)
        nt.attribution_method = rec
        out = impl.to_numpy(
            impl.run(
                nt, impl.asarray(x0), 2, nt_type="vargrad", nt_samples=VAR_N,
                nt_samples_batch_size=VAR_BS, stdevs=1.0, abs=False,
            )
        )  # fmt: skip
        rows = [impl.to_numpy(r) for r in rec.inputs]
        chunks = [r.reshape(VAR_SHAPE[0], -1, VAR_SHAPE[1]) for r in rows]
        ref = _vargrad_reference(np.concatenate(chunks, axis=1), w, eps, VAR_SHAPE[0])
        if (out < 0).any():
            raise AssertionError(f"{impl.label}: {(out < 0).sum()} negative VarGrad entries")
        rel = np.abs(out - ref) / ref
        if np.median(rel) > 0.01:
            raise AssertionError(f"{impl.label}: median relative error {np.median(rel):.3g}")
        ctx.assert_close(out, ref, f"{impl.label} VarGrad vs float64 two-pass")


@case(
    "003.captum.vargrad_cancellation",
    source=f"{SEED}, vargrad; {SOURCE} (E[a^2] - E[a]^2); gradient mean/sd 1e4",
    component="captum.attr.NoiseTunnel (refimpl.torch captum_compatible=True)",
    check=erratum(
        "the docstring says vargrad returns the variance of the sample attributions; captum "
        "computes E[a^2] - E[a]^2 in the attribution dtype, which cancels in float32: at "
        "mean/sd = 1e4 (gradient 100 + 0.01 x, sigma = 1) the median relative error is far "
        "above 100% and about a third of the entries are negative. Checked: captum (and "
        "captum_compatible=True) gives >= 10% negative entries and median error > 1; this "
        "project's VarGrad (Welford) is case 003.vargrad.float32_stable"
    ),
    originals=("captum",),
    backends=("torch",),
)
def captum_vargrad(ctx: Context) -> None:
    """captum's float32 VarGrad at mean/sd = 1e4: negative entries, error >> 100%"""
    w, eps = _QUADLIN["quadlin"]
    x0 = np.random.default_rng(4).standard_normal(VAR_SHAPE)
    chunks = [VAR_BS] * (VAR_N // VAR_BS) + [VAR_N % VAR_BS]
    for impl in _impls(ctx, compat=True):
        nt = impl.make("Saliency", "quadlin", {})
        out = impl.to_numpy(
            impl.run(
                nt, impl.asarray(x0), 2, nt_type="vargrad", nt_samples=VAR_N,
                nt_samples_batch_size=VAR_BS, stdevs=1.0, abs=False,
            )
        )  # fmt: skip
        rows = _captum_noise(impl.asarray(x0), 2, chunks, 1.0).cpu().numpy()
        per_chunk, start = [], 0
        for k in chunks:
            per_chunk.append(rows[start : start + VAR_SHAPE[0] * k].reshape(VAR_SHAPE[0], k, -1))
            start += VAR_SHAPE[0] * k
        ref = (w + eps * np.concatenate(per_chunk, axis=1).astype(np.float64)).var(axis=1)
        neg = float((out < 0).mean())
        med = float(np.median(np.abs(out - ref) / ref))
        if neg < 0.10 or med < 1.0:
            raise AssertionError(
                f"{impl.label}: expected captum's cancellation, got {neg:.1%} negative and "
                f"median relative error {med:.3g}"
            )


# -- the convergence delta --------------------------------------------------------------------
@case(
    "003.noise_tunnel.delta",
    source=f"{SEED}, Returns (delta); {SOURCE} (one delta per noisy sample)",
    component="refimpl.attr.NoiseTunnel + IntegratedGradients",
    check=erratum(
        "the docstring says delta is computed for each input in the batch as the arithmetic "
        "mean over the nt_samples perturbed tensors (B values); captum returns one delta per "
        "noisy sample (B*nt_samples values, by design since PR #86), chunk-major when "
        "nt_samples_batch_size splits the samples. Checked: shape (B*n,) everywhere; order "
        "chunk-major on captum (and captum_compatible=True), example-major (reshape(B, n)) "
        "in this project whatever the batch size",
        rtol=1e-5,
        atol=1e-6,
    ),
    originals=("captum",),
)
def delta(ctx: Context) -> None:
    """B=3, n=5, batch size 2, stdevs=0: delta has B*n entries, each example's IG delta"""
    impls = _impls(ctx) + _compat_impls(ctx)
    for impl in impls:
        x = impl.asarray(_X5)
        nt = impl.make("IntegratedGradients", "mlp", {})
        _, d0 = nt.attribution_method.attribute(
            x, target=1, method="riemann_left", n_steps=4, return_convergence_delta=True
        )
        per_example = impl.to_numpy(d0)
        _, d = impl.run(
            nt, x, 0, nt_samples=5, nt_samples_batch_size=2, stdevs=0.0, target=1,
            method="riemann_left", n_steps=4, return_convergence_delta=True,
        )  # fmt: skip
        d = impl.to_numpy(d)
        if d.shape != (15,):
            raise AssertionError(f"{impl.label}: delta shape {d.shape}, expected (15,)")
        if nt.per_chunk_noise:
            order = [0, 0, 1, 1, 2, 2] * 2 + [0, 1, 2]  # chunks of 2, 2, 1 samples
            ctx.assert_close(d, per_example[order], f"{impl.label}: chunk-major deltas")
        else:
            ctx.assert_close(d, np.repeat(per_example, 5), f"{impl.label}: example-major deltas")
