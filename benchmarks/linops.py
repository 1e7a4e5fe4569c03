"""Fisher-matrix products F V = J^T (J V) for k = 1, 8 and 32 vectors.

Models: plenoptic's ``Gaussian(10)`` and pretrained ``LuminanceGainControl(31)``, circular
padding, on a seeded float32 image in [0.1, 0.9] of 64x64 and 128x128 pixels. Contenders:

* plenoptic's own ``_fisher_info_matrix_vector_product`` on its retained graph (the ratio's
  reference; it loops over the k columns);
* ``as_model(module)`` through ``refimpl.linops.FisherOperator`` (one batched call for k > 1);
* the refimpl explicit-Jacobian model with the same weights (``Conv2d`` with plenoptic's
  filter, ``LuminanceGainControl`` with its float32 constants), on torch and on numpy.

Each operator is built (the model linearized) before timing: the timed call is the product.
After the table, the goals of the issue: as_model no slower than plenoptic per product; the
block product (k = 32) at least 4x cheaper per vector than single products; refimpl on numpy
within 2x of torch autograd (as_model) on the same model. ``--quick``: 16x16, k = 1 and 4.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np


def _image(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.1, 0.9, (1, 1, n, n)).astype(np.float32)


def _plenoptic_models() -> dict[str, Any]:
    import plenoptic as po

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "Gaussian(10)": po.models.Gaussian(10, pad_mode="circular", cache_filt=True),
            "LGC(31)": po.models.LuminanceGainControl(
                31, pretrained=True, cache_filt=True, pad_mode="circular"
            ),
        }
    for m in models.values():
        po.remove_grad(m)
        m.eval()
    return models


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


def _plenoptic_product(module: Any, img: Any, V: Any) -> Any:
    import torch
    from plenoptic._synthesize.autodiff import _fisher_info_matrix_vector_product

    x_flat = img.flatten().unsqueeze(1).requires_grad_(True)
    y = module(x_flat.view(img.shape)).squeeze().view(-1).unsqueeze(1)
    dummy = torch.ones_like(y, requires_grad=True)
    return lambda: _fisher_info_matrix_vector_product(y, x_flat, V, dummy)


def _ours(F: Any, V: Any) -> Any:
    return (lambda: F.matvec(V[:, 0])) if V.shape[1] == 1 else (lambda: F.matmat(V))


def run(h: Any) -> None:
    import torch

    from refimpl.linops import FisherOperator
    from refimpl.torch import as_model

    sizes, ks = ((16,), (1, 4)) if h.quick else ((64, 128), (1, 8, 32))
    have_po = importlib.util.find_spec("plenoptic") is not None
    if not have_po:
        print("plenoptic is not installed: refimpl's own LGC model only, no reference column")
        _run_without_plenoptic(h, sizes, ks)
        return
    summary = []
    for name, module in _plenoptic_models().items():
        ref_np = _refimpl_model(name, module, "numpy")
        ref_t = _refimpl_model(name, module, "torch")
        for n in sizes:
            img_np = _image(n)
            img = torch.from_numpy(img_np)
            F_as = FisherOperator(as_model(module), img)
            F_t = FisherOperator(ref_t, img)
            F_np = FisherOperator(ref_np, img_np)
            per_vector: dict[str, dict[int, float]] = {}
            for k in ks:
                V_np = np.random.default_rng(k).standard_normal((n * n, k)).astype(np.float32)
                V = torch.from_numpy(V_np)
                rows = h.compare(
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
                    per_vector.setdefault(r.impl, {})[k] = r.median / k
            summary.append((name, n, per_vector))
    _print_goals(summary, ks)


def _print_goals(summary: list, ks: tuple[int, ...]) -> None:
    kmax = max(ks)
    print("\ngoals (per-vector medians):")
    for name, n, pv in summary:
        po = pv["plenoptic (original)"]
        asm = pv["as_model(plenoptic module)"]
        rnp = pv["refimpl model, numpy"]
        line = []
        line.append(f"as_model/plenoptic k=1 {asm[1] / po[1]:.2f}x (goal <= 1)")
        for label, d in (("as_model", asm), ("refimpl torch", pv["refimpl model, torch"])):
            line.append(f"{label} single/block(k={kmax}) {d[1] / d[kmax]:.1f}x (goal >= 4)")
        line.append(f"refimpl numpy/as_model k={kmax} {rnp[kmax] / asm[kmax]:.2f}x (goal <= 2)")
        line.append(f"k=1 {rnp[1] / asm[1]:.2f}x")
        print(f"  {name} {n}x{n}: " + "; ".join(line))


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
