"""Fisher-matrix products F v = J^T (J v) through ``refimpl.torch.as_model``, against plenoptic.

The reference everywhere is plenoptic's own ``_fisher_info_matrix_vector_product`` on its
retained graph (what its ``Eigendistortion`` runs; it loops over k columns). Every operator
is built (the model linearized) before timing: the timed call is the product. The
contenders of one problem are timed interleaved (each repeat samples all of them in turn,
the order rotating), and the medians are compared, so a change of the machine's load hits
all of them alike; the load average is printed with the goals. Goals are judged on wall
time, as everywhere in ``benchmarks``; the per-product goal lines add the ratio of process
CPU time, which a busy machine does not inflate (with one torch thread it is the work done).

1. Per product (k = 1), the goal of issue 22: plenoptic's ``Gaussian(3)``,
   ``CenterSurround(31)``, and the pretrained ``LuminanceGainControl(31)`` and ``OnOff(31)``,
   each with plenoptic's defaults (reflect padding, filters rebuilt per call), on a seeded
   float32 image in [0.1, 0.9] of 64x64 and 128x128 pixels. Contenders: ``as_model(module)``
   through ``refimpl.linops.FisherOperator.matvec`` (``jvp_mode="auto"``: double backward on
   the graph retained per linearization) and, for the record of that rule, its forward-mode
   route (``jvp_mode="forward"``). Goal: as_model at most 1.0x plenoptic per product, one
   goal line per model and size.
2. Blocks of k = 1, 8 and 32 vectors on ``Gaussian(10)`` and the pretrained
   ``LuminanceGainControl(31)`` with circular padding and cached filters: as_model (one
   batched call for k > 1) and the refimpl explicit-Jacobian model with the same weights
   (``Conv2d`` with plenoptic's filter, ``LuminanceGainControl`` with its float32
   constants) on torch and on numpy. Goals: as_model at most 1.0x plenoptic at k = 1; the
   block (k = 32) at least 4x cheaper per vector than single products; refimpl on numpy
   within 2x of as_model at k = 32. (plenoptic records the graph of J^T d once per block, so
   its cost per vector falls with k; the table gives the ratios at every k.)

``--quick``: 16x16 images, k = 1 and 4 (a smoke run). torch uses its default threads; on a
shared machine ``OMP_NUM_THREADS=1`` keeps oversubscribed thread pools from timing the
scheduler instead of the products.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import Row


def _image(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.1, 0.9, (1, 1, n, n)).astype(np.float32)


def _quiet_models(build: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    import plenoptic as po

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plenoptic's notes on cache_filt and deprecations
        models = build(po)
    for m in models.values():
        po.remove_grad(m)
        m.eval()
    return models


def _per_product_models() -> dict[str, Any]:
    """Part 1: plenoptic's models with its defaults."""
    return _quiet_models(
        lambda po: {
            "Gaussian(3)": po.models.Gaussian(3),
            "CenterSurround(31)": po.models.CenterSurround(31),
            "LuminanceGainControl(31)": po.models.LuminanceGainControl(31, pretrained=True),
            "OnOff(31)": po.models.OnOff(31, pretrained=True),
        }
    )


def _block_models() -> dict[str, Any]:
    """Part 2: the models with refimpl twins (circular padding, cached filters)."""
    return _quiet_models(
        lambda po: {
            "Gaussian(10)": po.models.Gaussian(10, pad_mode="circular", cache_filt=True),
            "LGC(31)": po.models.LuminanceGainControl(
                31, pretrained=True, cache_filt=True, pad_mode="circular"
            ),
        }
    )


def _refimpl_model(name: str, module: Any, backend: str) -> Any:
    import backends
    from refimpl import models as rm

    f32 = lambda v: float(np.float32(v))  # noqa: E731  (plenoptic's constants are float32)
    if name.startswith("Gaussian"):
        filt = module.filt.detach().numpy().astype(np.float64)
        return rm.Conv2d(backends.get(backend).asarray(filt), pad_mode="circular")
    return rm.LuminanceGainControl(
        31,
        center_std=f32(1.962),
        surround_std=f32(4.235),
        luminance_std=f32(4.235),
        luminance_scalar=f32(14.95),
        pad_mode="circular",
        backend=backend,
    )


def _plenoptic_product(module: Any, img: Any, V: Any) -> Callable[[], Any]:
    """plenoptic's F V (its (n, k) layout) on one graph recorded here, as its Eigendistortion
    records it."""
    import torch
    from plenoptic._synthesize.autodiff import _fisher_info_matrix_vector_product

    x_flat = img.flatten().unsqueeze(1).requires_grad_(True)
    y = module(x_flat.view(img.shape)).squeeze().view(-1).unsqueeze(1)
    dummy = torch.ones_like(y, requires_grad=True)
    return lambda: _fisher_info_matrix_vector_product(y, x_flat, V, dummy)


def _ours(F: Any, V: Any) -> Callable[[], Any]:
    return (lambda: F.matvec(V[:, 0])) if V.shape[1] == 1 else (lambda: F.matmat(V))


# -- interleaved timing -------------------------------------------------------------------------


def _compare_interleaved(
    h: Any,
    title: str,
    ours: dict[str, Callable[[], Any]],
    original: tuple[str, Callable[[], Any]],
    note: str = "",
) -> tuple[list[Row], dict[str, float]]:
    """``h.compare`` with the repeats interleaved: ``h.warmup`` calls of each, then
    ``h.repeats`` rounds sampling every contender once, the order rotating per round. Also
    returns each contender's median ratio of process CPU time to the original's (what the
    product costs in work, whatever the machine's load)."""
    lib, ref_fn = original
    fns = {f"{lib} (original)": ref_fn, **ours}
    for fn in fns.values():
        for _ in range(h.warmup):
            fn()
    numbers = {label: h.calls_per_sample(fn) for label, fn in fns.items()}
    times: dict[str, list[float]] = {label: [] for label in fns}
    cpu: dict[str, list[float]] = {label: [] for label in fns}
    order = list(fns)
    for r in range(h.repeats):
        for label in order[r % len(order) :] + order[: r % len(order)]:
            fn, number = fns[label], numbers[label]
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            times[label].append((time.perf_counter() - t0) / number)
            cpu[label].append((time.process_time() - c0) / number)
    rows = [
        Row(title, label, times[label], h.peak_memory(fn), is_original=i == 0, note=note)
        for i, (label, fn) in enumerate(fns.items())
    ]
    for row in rows[1:]:
        row.ratio = row.median / rows[0].median
    h.rows.extend(rows)
    ref_cpu = max(statistics.median(cpu[order[0]]), 1e-12)
    return rows, {label: statistics.median(c) / ref_cpu for label, c in cpu.items()}


def _goal(text: str, value: float, met: bool, cpu: float | None = None) -> str:
    also = "" if cpu is None else f" (CPU time {cpu:.2f}x)"
    return f"goal: {text}: {value:.2f}x{also}, {'met' if met else 'NOT met'}"


def _load() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import torch

    return f"{os.cpu_count()} cores, load {load:.2f}, torch threads {torch.get_num_threads()}"


# -- the two parts ------------------------------------------------------------------------------
def _per_product(h: Any, sizes: tuple[int, ...]) -> list[str]:
    """Part 1: F v (k = 1) through as_model's two routes against plenoptic's product."""
    import torch

    from refimpl.linops import FisherOperator
    from refimpl.torch import as_model

    goals = []
    for name, module in _per_product_models().items():
        for n in sizes:
            img = torch.from_numpy(_image(n))
            V = torch.from_numpy(
                np.random.default_rng(1).standard_normal((n * n, 1)).astype(np.float32)
            )
            auto = as_model(module)
            F_auto = FisherOperator(auto, img)
            F_fwd = FisherOperator(as_model(module, jvp_mode="forward"), img)
            rows, cpu = _compare_interleaved(
                h,
                f"F v {name} {n}x{n}",
                {
                    "as_model (auto)": _ours(F_auto, V),
                    "as_model (jvp_mode=forward)": _ours(F_fwd, V),
                },
                original=("plenoptic", _plenoptic_product(module, img, V)),
                note=f"float32, {n * n} pixels",
            )
            ratio = rows[1].ratio
            goals.append(
                _goal(
                    f"F v through as_model ({auto.jvp_route}) <= 1.0x plenoptic per product, "
                    f"{name} {n}x{n}",
                    ratio,
                    ratio <= 1.0,
                    cpu[rows[1].impl],
                )
            )
    return goals


def _blocks(h: Any, sizes: tuple[int, ...], ks: tuple[int, ...]) -> list[str]:
    """Part 2: blocks of k vectors, as_model and the refimpl models against plenoptic."""
    import torch

    from refimpl.linops import FisherOperator
    from refimpl.torch import as_model

    goals = []
    kmax = max(ks)
    for name, module in _block_models().items():
        ref_np = _refimpl_model(name, module, "numpy")
        ref_t = _refimpl_model(name, module, "torch")
        for n in sizes:
            img_np = _image(n)
            img = torch.from_numpy(img_np)
            F_as = FisherOperator(as_model(module), img)
            F_t = FisherOperator(ref_t, img)
            F_np = FisherOperator(ref_np, img_np)
            pv: dict[str, dict[int, float]] = {}
            for k in ks:
                V_np = np.random.default_rng(k).standard_normal((n * n, k)).astype(np.float32)
                V = torch.from_numpy(V_np)
                rows, _ = _compare_interleaved(
                    h,
                    f"F V {name} {n}x{n} k={k}",
                    {
                        "as_model(plenoptic module)": _ours(F_as, V),
                        "refimpl model, torch": _ours(F_t, V),
                        "refimpl model, numpy": _ours(F_np, V_np),
                    },
                    original=("plenoptic", _plenoptic_product(module, img, V)),
                    note=f"float32, {n * n} pixels",
                )
                for r in rows:
                    pv.setdefault(r.impl, {})[k] = r.median / k
            goals += _block_goals(f"{name} {n}x{n}", pv, kmax)
    return goals


def _block_goals(case: str, pv: dict[str, dict[int, float]], kmax: int) -> list[str]:
    po, asm = pv["plenoptic (original)"], pv["as_model(plenoptic module)"]
    rt, rnp = pv["refimpl model, torch"], pv["refimpl model, numpy"]
    r = asm[1] / po[1]
    out = [_goal(f"as_model <= 1.0x plenoptic per product, {case} k=1", r, r <= 1.0)]
    for label, d in (("as_model", asm), ("refimpl torch", rt)):
        r = d[1] / d[kmax]
        out.append(_goal(f"{label} single/block(k={kmax}) >= 4x per vector, {case}", r, r >= 4))
    r = rnp[kmax] / asm[kmax]
    out.append(_goal(f"refimpl numpy/as_model <= 2x at k={kmax}, {case}", r, r <= 2))
    return out


def run(h: Any) -> None:
    sizes, ks = ((16,), (1, 4)) if h.quick else ((64, 128), (1, 8, 32))
    if importlib.util.find_spec("plenoptic") is None:
        print("plenoptic is not installed: refimpl's own LGC model only, no reference column")
        _run_without_plenoptic(h, sizes, ks)
        return
    goals = _per_product(h, sizes)
    goals += _blocks(h, sizes, ks)
    print(f"\ngoals (medians of {h.repeats} interleaved repeats; {_load()}):")
    for line in goals:
        print("  " + line)


def _run_without_plenoptic(h: Any, sizes: tuple[int, ...], ks: tuple[int, ...]) -> None:
    from refimpl import models as rm
    from refimpl.linops import FisherOperator

    model = rm.LuminanceGainControl(31, pad_mode="circular", backend="numpy")
    for n in sizes:
        img = _image(n)
        F = FisherOperator(model, img)
        for k in ks:
            V = np.random.default_rng(k).standard_normal((n * n, k)).astype(np.float32)
            h.compare(f"F V LGC(31) {n}x{n} k={k}", {"refimpl model, numpy": _ours(F, V)})
