"""Eigendistortions: plenoptic's power method against Lanczos (``method="eigsh"``).

Models: plenoptic's ``Gaussian(10, pad_mode="circular")`` and pretrained
``LuminanceGainControl(31, pad_mode="circular")``, float64, on a seeded 1/f noise image at
64 x 64 and 128 x 128 (``--quick``: 16 x 16, max_iter 20). For the top and the bottom
eigenpair separately:

* plenoptic 2.1.1's power method with its defaults (``max_iter=1000``,
  ``stop_criterion=1e-7``; its ``_synthesize_power`` for the top, then for the bottom with
  the top eigenvalue as shift, exactly as ``synthesize`` calls it);
* ``refimpl.torch.Eigendistortion(...).synthesize("eigsh", stop_criterion=1e-6)`` on the
  same torch module;
* ``refimpl.eigendistortion.Eigendistortion`` with the same weights as explicit models
  (``refimpl.models``, numpy);
* the same, stopped at plenoptic's accuracy: ``stop_criterion`` = the residual plenoptic's
  result reached for that pair, Krylov-Schur for the top (it checks every step; ARPACK
  only after each cycle of 20 products).

Ours get ``max_iter=3000`` block products per end (plenoptic: 1000 iterations of 2).

Reported per pair: Fisher-vector products (plenoptic's counted by wrapping its
``_fisher_info_matrix_vector_product``), wall time (one run each: a solve lasts seconds),
eigenvalue relative error and top eigenvector |cos| against a reference, and the residual
``||F v - lambda v|| / lambda_max`` recomputed independently in float64 with the refimpl
numpy operator. References: ``exact`` (dense F, numpy ``eigh``) at 64 x 64 and in quick
mode; the analytic top pair of the circular Gaussian (lambda = 1, the constant image); for
LGC at 128 x 128, scipy's ``eigsh`` at ``tol=1e-13``. The bottom of these spectra is
degenerate: there the figure of merit is the Rayleigh quotient (lower is better) and the
residual, never the angle to one eigenvector.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.harness import Harness, Row
from conformance.cases.seed004 import pink_noise  # the image of the seed-004 cases
from refimpl.linops import FisherOperator

TOL = 1e-6  # our stop_criterion: residual <= 1e-6 lambda_max


def _has_plenoptic() -> bool:
    return importlib.util.find_spec("plenoptic") is not None


def _f32(v: float) -> float:
    return float(np.float32(v))


def _gauss10() -> np.ndarray:
    """plenoptic's Gaussian(10, std=3) filter: offsets 1..10 - 5.5, normalised."""
    o = np.arange(1, 11) - 5.5
    g = np.exp(-(o[:, None] ** 2 + o[None, :] ** 2) / 18.0)
    return g / g.sum()


def _models(name: str) -> tuple[Any, Any]:
    """(torch module or None without plenoptic, refimpl numpy model), same weights, float64."""
    from refimpl import models as rm

    if not _has_plenoptic():
        if name == "Gaussian":
            return None, rm.Conv2d(_gauss10(), pad_mode="circular")
        return None, rm.LuminanceGainControl(
            31, center_std=_f32(1.962), surround_std=_f32(4.235), luminance_std=_f32(4.235),
            luminance_scalar=_f32(14.95), pad_mode="circular", backend="numpy",
        )  # fmt: skip
    import plenoptic as po

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "Gaussian":
            module = po.models.Gaussian(10, pad_mode="circular", cache_filt=True)
            g = module.filt.detach().double().numpy()
            ours = rm.Conv2d(g, pad_mode="circular")
        else:
            module = po.models.LuminanceGainControl(
                31, pad_mode="circular", pretrained=True, cache_filt=True
            )
            ours = rm.LuminanceGainControl(
                31, center_std=_f32(1.962), surround_std=_f32(4.235),
                luminance_std=_f32(4.235), luminance_scalar=_f32(14.95),
                pad_mode="circular", backend="numpy",
            )  # fmt: skip
    module = module.double().eval()
    po.remove_grad(module)
    return module, ours


class _Counter:
    """Counts plenoptic's Fisher-vector products (columns)."""

    def __init__(self) -> None:
        import plenoptic._synthesize.autodiff as ad
        import plenoptic._synthesize.eigendistortion as ed

        self.n, self._mods, self._orig = 0, (ad, ed), ad._fisher_info_matrix_vector_product
        orig = self._orig

        def counted(y: Any, x: Any, v: Any, dummy: Any) -> Any:
            self.n += v.shape[1]
            return orig(y, x, v, dummy)

        self._counted = counted

    def __enter__(self) -> _Counter:
        for m in self._mods:
            m._fisher_info_matrix_vector_product = self._counted
        return self

    def __exit__(self, *exc: Any) -> None:
        for m in self._mods:
            m._fisher_info_matrix_vector_product = self._orig


def _plenoptic_pairs(module: Any, image: np.ndarray, max_iter: int) -> dict[str, dict]:
    import plenoptic as po
    import torch

    x = torch.as_tensor(image)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        po.set_seed(0)
        eig = po.Eigendistortion(x, module)
    sink = io.StringIO()
    shift = 0.0
    for end in ("top", "bottom"):
        with _Counter() as c, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            t0 = time.perf_counter()
            lam, v = eig._synthesize_power(k=1, shift=shift, tol=1e-7, max_iter=max_iter)
            seconds = time.perf_counter() - t0
        out[end] = dict(vector=v.detach().numpy().ravel(), products=c.n, seconds=seconds)
        shift = lam[0]
    return out


def _ours_pairs(
    eig: Any, to_numpy: Any, max_iter: int, tol: float = TOL, lanczos: str = "auto"
) -> dict[str, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eig.synthesize(
            "eigsh", stop_criterion=tol, max_iter=max_iter, rng=0, progress=False, lanczos=lanczos
        )
    d = to_numpy(eig.eigendistortions)
    d = d.reshape(d.shape[0], -1)
    out = {}
    for i, end in enumerate(("top", "bottom")):
        info = eig.convergence[end]
        out[end] = dict(vector=d[i], products=info["n_products"], seconds=info["seconds"])
    return out


def _check(F: Any, v: np.ndarray, lam_max: float) -> tuple[float, float]:
    """(Rayleigh quotient, residual / lambda_max) of v, in float64 with the numpy operator."""
    v = v / np.linalg.norm(v)
    Fv = np.asarray(F.matvec(v))
    lam = float(v @ Fv)
    return lam, float(np.linalg.norm(Fv - lam * v)) / lam_max


def _reference(name: str, n: int, F: Any, ours: Any, image: np.ndarray, quick: bool) -> dict:
    """The reference top eigenpair."""
    from refimpl.linops import aslinearoperator, jacobian

    if n <= 64 or quick:
        J = np.asarray(jacobian(ours, image))
        w, V = np.linalg.eigh(J.T @ J)
        return dict(lam=w[-1], vec=V[:, -1], how="exact (dense F, numpy eigh)")
    if name == "Gaussian":  # circulant: top = DC, |DFT(g)|^2 = 1
        return dict(lam=1.0, vec=np.full(n * n, 1 / n), how="analytic (circulant F)")
    from scipy.sparse.linalg import eigsh

    v0 = np.random.default_rng(1).standard_normal(n * n)
    w, V = eigsh(aslinearoperator(FisherOperator(ours, image)), k=1, tol=1e-13, v0=v0)
    return dict(lam=w[0], vec=V[:, 0], how="scipy eigsh, tol=1e-13")


def run(h: Harness) -> None:
    if not _has_plenoptic():
        h.printer("plenoptic is not installed: refimpl eigsh only (pip install 'refimpl[bench]')")
    from refimpl.eigendistortion import Eigendistortion

    sizes = [16] if h.quick else [64, 128]
    max_iter = 20 if h.quick else 1000  # plenoptic's default
    our_max_iter = 20 if h.quick else 3000  # block products per end: enough to converge
    table = []
    for name in ("Gaussian", "LGC"):
        for n in sizes:
            module, ours = _models(name)
            image = pink_noise(n)
            F = FisherOperator(ours, image)
            ref = _reference(name, n, F, ours, image, h.quick)
            results = {}
            if module is not None:
                results["plenoptic power (defaults)"] = _plenoptic_pairs(module, image, max_iter)
                import torch

                from refimpl.torch import Eigendistortion as TorchEigendistortion

                results["eigsh, torch front end"] = _ours_pairs(
                    TorchEigendistortion(torch.as_tensor(image), module),
                    lambda t: t.detach().numpy(),
                    our_max_iter,
                )
            results["eigsh, refimpl numpy"] = _ours_pairs(
                Eigendistortion(image, ours), np.asarray, our_max_iter
            )
            if "plenoptic power (defaults)" in results:  # stop at plenoptic's own accuracy
                matched = {}
                for end in ("top", "bottom"):
                    v = results["plenoptic power (defaults)"][end]["vector"]
                    tol = _check(F, v, ref["lam"])[1]
                    matched[end] = _ours_pairs(
                        Eigendistortion(image, ours), np.asarray, our_max_iter, tol=tol,
                        lanczos="krylov_schur",
                    )[end]  # fmt: skip
                results["eigsh at plenoptic's residual, refimpl numpy"] = matched
            title = f"{name} {n}x{n}"
            base = results.get("plenoptic power (defaults)")
            for impl, pairs in results.items():
                for end in ("top", "bottom"):
                    p = pairs[end]
                    lam, res = _check(F, p["vector"], ref["lam"])
                    row = dict(case=title, end=end, impl=impl, products=p["products"],
                               seconds=p["seconds"], lam=lam, residual=res)  # fmt: skip
                    if end == "top":
                        row["rel_err"] = abs(lam - ref["lam"]) / ref["lam"]
                        cos = abs(p["vector"] @ ref["vec"]) / np.linalg.norm(p["vector"])
                        row["cos"] = cos / np.linalg.norm(ref["vec"])
                    else:
                        row["rq"] = lam / ref["lam"]
                    table.append(row)
                    original = impl.startswith("plenoptic")
                    ratio = (
                        None if original or base is None else p["seconds"] / base[end]["seconds"]
                    )
                    h.rows.append(
                        Row(
                            f"{title} {end}",
                            impl + (" (original)" if original else ""),
                            [p["seconds"]],
                            0,
                            is_original=original,
                            ratio=ratio,
                            note=f"{p['products']} products",
                        )  # fmt: skip
                    )
            h.printer(f"{title}: reference {ref['how']}; lambda_max = {ref['lam']:.6g}")
    _print_table(h, table)


def _print_table(h: Harness, table: list[dict]) -> None:
    head = ("case", "pair", "implementation", "FIM prod.", "wall s", "lambda rel.err / RQ",
            "residual/lmax", "|cos|", "prod. ratio", "time ratio")  # fmt: skip
    lines, base = [], {}
    for r in table:
        key = (r["case"], r["end"])
        if r["impl"].startswith("plenoptic"):
            base[key] = r
        b = base.get(key)
        pr = "1 (ref)" if b is r else (f"{b['products'] / r['products']:.1f}x fewer" if b else "-")
        tr = "1 (ref)" if b is r else (f"{b['seconds'] / r['seconds']:.1f}x faster" if b else "-")
        acc = f"{r['rel_err']:.1e}" if r["end"] == "top" else f"RQ {r['rq']:.1e}"
        cos = f"{r['cos']:.7f}" if r["end"] == "top" else "-"
        lines.append((r["case"], r["end"], r["impl"], str(r["products"]),
                      f"{r['seconds']:.2f}", acc, f"{r['residual']:.1e}", cos, pr, tr))  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)] if lines else []
    out = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in lines]
    out.append(
        "(float64; lambda rel.err and |cos| of the top pair against the reference; RQ = "
        "Rayleigh quotient / lambda_max of the bottom vector; residual ||Fv - lambda v|| / "
        "lambda_max recomputed in float64 with the refimpl numpy operator; ratios are "
        "plenoptic / ours; peak memory not measured: one run per row)"
    )
    h.printer("\n".join(out))
