"""Eigendistortions: plenoptic's power method against Lanczos (``method="eigsh"``).

Default (a few minutes): plenoptic 2.1.1's ``Gaussian(3)``, ``CenterSurround(5)``,
``LuminanceGainControl(7)`` and ``OnOff(7)`` (``cache_filt=True``, seeded with
``torch.manual_seed(0)``, eval mode, no parameter gradients) on the seed-004 1/f noise image
at 64 x 64 in float32 (torch's and plenoptic's default), the top and the bottom pair (k=1):

* plenoptic's ``synthesize("power")`` with its defaults (``max_iter=1000``,
  ``stop_criterion=1e-7``), timed as the two ``_synthesize_power`` runs it makes (the top,
  then the bottom with the top eigenvalue as shift), its Fisher-vector products counted;
* ``refimpl.torch.Eigendistortion(image, module).synthesize("eigsh", k=1)`` with its
  defaults (``stop_criterion=1e-7``, clamped to 100 eps of float32 = 1.19e-5), on the same
  module: ``convergence`` gives each end's time and the time spent in the model's products.

Runs of the two alternate, ``min(--repeats, 5)`` of each; medians. Residuals
``||F v - lambda v|| / lambda_max`` of every returned vector are recomputed independently in
float64 (``refimpl.torch.as_model`` on a float64 copy of the module; ``lambda_max`` the
larger top Rayleigh quotient). Goals, each printed as met / NOT met:

* the pair (top + bottom) in at most 1.0x plenoptic's time, with residuals at least 10x
  smaller at both ends; the top pair at least 5x faster;
* ``Gaussian(3)``: the eigensolver's own work (the bottom solve's time outside the model's
  products) at most 25% of the bottom solve.

``--full`` (``python -m benchmarks.eigendistortion --full``, about half an hour) adds the long
cases: plenoptic's ``Gaussian(10, pad_mode="circular")`` and pretrained
``LuminanceGainControl(31, pad_mode="circular")`` in float64 at 64 x 64 and 128 x 128, where
``refimpl.eigendistortion`` also runs on explicit numpy models with the same weights, and once
more stopped at the residual plenoptic reached (references: ``exact`` at 64 x 64, the
analytic top pair of the circular Gaussian, scipy's ``eigsh`` at ``tol=1e-13``); and
pretrained ``OnOff(31)`` and ``CenterSurround(10)`` at 64 x 64 in float32. ``--quick``:
16 x 16, ``max_iter`` 20, one run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.harness import Harness, Row, machine_info
from conformance.cases.seed004 import pink_noise  # the image of the seed-004 cases
from refimpl.linops import FisherOperator

TOL = 1e-6  # the --full cases' stop_criterion (float64): residual <= 1e-6 lambda_max
#: the default cases: (title, plenoptic constructor name, arguments)
MODELS = [
    ("Gaussian(3)", "Gaussian", dict(kernel_size=3)),
    ("CenterSurround(5)", "CenterSurround", dict(kernel_size=5)),
    ("LuminanceGainControl(7)", "LuminanceGainControl", dict(kernel_size=7)),
    ("OnOff(7)", "OnOff", dict(kernel_size=7)),
]
#: the long float32 cases of --full
FULL_MODELS = [
    ("CenterSurround(10)", "CenterSurround", dict(kernel_size=10)),
    ("OnOff(31), pretrained", "OnOff", dict(kernel_size=31, pretrained=True)),
]
#: the runs of each implementation in the default cases (at most; --repeats lowers it)
REPEATS = 5
#: the goals
PAIR_RATIO, RESIDUAL_FACTOR, TOP_SPEEDUP, OVERHEAD_SHARE = 1.0, 10.0, 5.0, 0.25


def _has_plenoptic() -> bool:
    return importlib.util.find_spec("plenoptic") is not None


def run(h: Harness) -> None:
    if not _has_plenoptic():
        h.printer("plenoptic is not installed: nothing to compare (pip install 'refimpl[bench]')")
        _refimpl_only(h)
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread for both: the machine's load moves less
    try:
        _plenoptic_models(h, MODELS, size=16 if h.quick else 64, quick=h.quick)
        if getattr(h, "full", False) and not h.quick:
            _plenoptic_models(h, FULL_MODELS, size=64, quick=False)
            _float64_cases(h)
    finally:
        torch.set_num_threads(threads)


# -- the default cases: plenoptic's models, float32 -------------------------------------------
def _module(kind: str, kwargs: dict, dtype: Any) -> Any:
    import plenoptic as po
    import torch

    torch.manual_seed(0)  # the models that are not pretrained draw some parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = getattr(po.models, kind)(**kwargs, cache_filt=True)
    module = module.to(dtype).eval()
    po.remove_grad(module)
    return module


def _plenoptic_solve(module: Any, image: Any, max_iter: int) -> dict[str, dict]:
    """plenoptic's two power runs, as ``synthesize("power")`` makes them."""
    import plenoptic as po

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        po.set_seed(0)
        eig = po.Eigendistortion(image, module)
    sink, out, shift = io.StringIO(), {}, 0.0
    for end in ("top", "bottom"):
        with _Counter() as c, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            t0 = time.perf_counter()
            lam, v = eig._synthesize_power(k=1, shift=shift, tol=1e-7, max_iter=max_iter)
            seconds = time.perf_counter() - t0
        out[end] = dict(vector=v.detach().double().numpy().ravel(), products=c.n, seconds=seconds)
        shift = lam[0]
    return out


def _our_solve(module: Any, image: Any, max_iter: int) -> dict[str, dict]:
    from refimpl.torch import Eigendistortion

    eig = Eigendistortion(image, module)
    eig.synthesize("eigsh", k=1, max_iter=max_iter, rng=0, progress=False)
    d = eig.eigendistortions.detach().double().numpy().reshape(2, -1)
    out = {}
    for i, end in enumerate(("top", "bottom")):
        c = eig.convergence[end]
        out[end] = dict(vector=d[i], products=c["n_products"], seconds=c["seconds"],
                        product_seconds=c.get("product_seconds", c["seconds"]),
                        converged=c["converged"])  # fmt: skip
    return out


def _plenoptic_models(h: Harness, models: list, *, size: int, quick: bool) -> None:
    import torch

    from refimpl.torch import as_model

    max_iter = 20 if quick else 1000
    repeats = 1 if quick else min(h.repeats, REPEATS)
    image = torch.as_tensor(pink_noise(size), dtype=torch.float32)
    lines = []
    for title, kind, kwargs in models:
        module = _module(kind, kwargs, torch.float32)
        F = FisherOperator(as_model(_module(kind, kwargs, torch.float64)), image.double())
        _plenoptic_solve(module, image, 2)  # warm-up: imports, first graphs
        _our_solve(module, image, 2)
        runs: dict[str, list] = {"plenoptic": [], "ours": []}
        for _ in range(repeats):  # alternating: a change of load hits both
            runs["plenoptic"].append(_plenoptic_solve(module, image, max_iter))
            runs["ours"].append(_our_solve(module, image, max_iter))
        case = f"{title} {size}x{size}"
        lines += _judge(h, case, F, runs, overhead=kind == "Gaussian")
    h.printer("\n".join(lines))


def _judge(h: Harness, case: str, F: Any, runs: dict, overhead: bool) -> list[str]:
    """Rows, a table line per implementation and end, the goals' verdicts."""
    last = {impl: r[-1] for impl, r in runs.items()}
    lam_max = max(_check(F, last[impl]["top"]["vector"], 1.0)[0] for impl in last)
    med = {
        impl: {end: statistics.median(r[end]["seconds"] for r in rs) for end in ("top", "bottom")}
        for impl, rs in runs.items()
    }
    pair = {impl: [r["top"]["seconds"] + r["bottom"]["seconds"] for r in rs]
            for impl, rs in runs.items()}  # fmt: skip
    lines = [f"{case}: lambda_max = {lam_max:.6g} (float64 Rayleigh quotient)"]
    residual = {}
    for impl in ("plenoptic", "ours"):
        for end in ("top", "bottom"):
            p = last[impl][end]
            lam, res = _check(F, p["vector"], lam_max)
            residual[impl, end] = res
            lines.append(
                f"  {impl:9s} {end:6s}: {p['products']:5d} products, "
                f"{med[impl][end]:7.2f} s (median of {len(runs[impl])}), "
                f"lambda {lam:.4g}, residual {res:.1e}"
            )
        h.rows.append(
            Row(
                f"{case} pair",
                "plenoptic power (original)" if impl == "plenoptic" else "refimpl eigsh",
                pair[impl],
                0,
                is_original=impl == "plenoptic",
                ratio=None
                if impl == "plenoptic"
                else statistics.median(pair["ours"]) / statistics.median(pair["plenoptic"]),
                note=f"{last[impl]['top']['products'] + last[impl]['bottom']['products']} products",
            )
        )
    ratio = statistics.median(pair["ours"]) / statistics.median(pair["plenoptic"])
    lines.append(_goal(f"{case}: pair time <= {PAIR_RATIO:.1f}x plenoptic's", ratio <= PAIR_RATIO,
                       f"{ratio:.2f}x"))  # fmt: skip
    for end in ("top", "bottom"):
        factor = residual["plenoptic", end] / max(residual["ours", end], 1e-300)
        lines.append(_goal(f"{case}: {end} residual >= {RESIDUAL_FACTOR:.0f}x smaller",
                           factor >= RESIDUAL_FACTOR, f"{factor:.1f}x"))  # fmt: skip
    speedup = med["plenoptic"]["top"] / med["ours"]["top"]
    lines.append(_goal(f"{case}: top pair >= {TOP_SPEEDUP:.0f}x faster", speedup >= TOP_SPEEDUP,
                       f"{speedup:.1f}x"))  # fmt: skip
    if overhead:
        shares = [1 - r["bottom"]["product_seconds"] / r["bottom"]["seconds"] for r in runs["ours"]]
        share = statistics.median(shares)
        lines.append(_goal(f"{case}: eigensolver's own work <= {OVERHEAD_SHARE:.0%} of the bottom "
                           "solve", share <= OVERHEAD_SHARE,
                           f"{share:.0%} (runs: {', '.join(f'{s:.0%}' for s in shares)})"))  # fmt: skip
    return lines


def _goal(what: str, met: bool, value: str) -> str:
    return f"  goal {what}: {'met' if met else 'NOT met'} ({value})"


def _check(F: Any, v: np.ndarray, lam_max: float) -> tuple[float, float]:
    """(Rayleigh quotient, residual / lambda_max) of v, in float64 with ``F``'s operator."""
    v = np.asarray(v, dtype=np.float64)
    v = v / np.linalg.norm(v)
    x = _like(F, v)
    Fv = np.asarray(_to_numpy(F.matvec(x)), dtype=np.float64)
    lam = float(v @ Fv)
    return lam, float(np.linalg.norm(Fv - lam * v)) / lam_max


def _like(F: Any, v: np.ndarray) -> Any:
    x = F.x
    if isinstance(x, np.ndarray):
        return v.astype(x.dtype)
    import torch

    return torch.as_tensor(v, dtype=x.dtype, device=x.device)


def _to_numpy(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


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


# -- refimpl alone (no plenoptic) ----------------------------------------------------------------
def _refimpl_only(h: Harness) -> None:
    from refimpl import models as rm
    from refimpl.eigendistortion import Eigendistortion

    n = 16 if h.quick else 64
    image = pink_noise(n).astype(np.float32)
    model = rm.Conv2d(_gauss(3, 3.0).astype(np.float32))
    eig = Eigendistortion(image, model)
    t0 = time.perf_counter()
    eig.synthesize("eigsh", rng=0, progress=False, max_iter=20 if h.quick else 1000)
    seconds = time.perf_counter() - t0
    c = eig.convergence["bottom"]
    share = 1 - c["product_seconds"] / c["seconds"]
    h.rows.append(Row(f"Gaussian(3) {n}x{n} pair", "refimpl eigsh (numpy)", [seconds], 0))
    h.printer(f"Gaussian(3) {n}x{n}, numpy: bottom {c['n_products']} products, residual "
              f"{c['max_residual']:.1e}, eigensolver's own work {share:.0%} of the bottom solve")  # fmt: skip


def _gauss(k: int, std: float) -> np.ndarray:
    """plenoptic's Gaussian(k, std) filter: offsets 1..k - (k + 1) / 2, normalised."""
    o = np.arange(1, k + 1) - (k + 1) / 2
    g = np.exp(-(o[:, None] ** 2 + o[None, :] ** 2) / (2 * std**2))
    return (g / g.sum())[None, None]


# -- --full: the long float64 cases --------------------------------------------------------------
def _f32(v: float) -> float:
    return float(np.float32(v))


def _float64_models(name: str) -> tuple[Any, Any]:
    """(plenoptic torch module, refimpl numpy model) with the same weights, float64."""
    import plenoptic as po

    from refimpl import models as rm

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


def _reference(name: str, n: int, ours: Any, image: np.ndarray) -> dict:
    """The reference top eigenpair."""
    from refimpl.linops import aslinearoperator, jacobian

    if n <= 64:
        J = np.asarray(jacobian(ours, image))
        w, V = np.linalg.eigh(J.T @ J)
        return dict(lam=w[-1], vec=V[:, -1], how="exact (dense F, numpy eigh)")
    if name == "Gaussian":  # circulant: top = DC, |DFT(g)|^2 = 1
        return dict(lam=1.0, vec=np.full(n * n, 1 / n), how="analytic (circulant F)")
    from scipy.sparse.linalg import eigsh

    v0 = np.random.default_rng(1).standard_normal(n * n)
    w, V = eigsh(aslinearoperator(FisherOperator(ours, image)), k=1, tol=1e-13, v0=v0)
    return dict(lam=w[0], vec=V[:, 0], how="scipy eigsh, tol=1e-13")


def _float64_cases(h: Harness) -> None:
    import torch

    from refimpl.eigendistortion import Eigendistortion
    from refimpl.torch import Eigendistortion as TorchEigendistortion

    table = []
    for name in ("Gaussian", "LGC"):
        for n in (64, 128):
            module, ours = _float64_models(name)
            image = pink_noise(n)
            F = FisherOperator(ours, image)
            ref = _reference(name, n, ours, image)
            results = {
                "plenoptic power (defaults)": _plenoptic_solve(module, torch.as_tensor(image), 1000),
                "eigsh, torch front end": _ours_pairs(
                    TorchEigendistortion(torch.as_tensor(image), module),
                    lambda t: t.detach().numpy(), 3000,
                ),
                "eigsh, refimpl numpy": _ours_pairs(Eigendistortion(image, ours), np.asarray, 3000),
            }  # fmt: skip
            matched = {}
            for end in ("top", "bottom"):  # stopped at plenoptic's own accuracy
                v = results["plenoptic power (defaults)"][end]["vector"]
                tol = _check(F, v, ref["lam"])[1]
                matched[end] = _ours_pairs(
                    Eigendistortion(image, ours), np.asarray, 3000, tol=tol, lanczos="krylov_schur"
                )[end]
            results["eigsh at plenoptic's residual, refimpl numpy"] = matched
            title = f"{name} {n}x{n} float64"
            base = results["plenoptic power (defaults)"]
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
                    h.rows.append(
                        Row(
                            f"{title} {end}",
                            impl + (" (original)" if original else ""),
                            [p["seconds"]],
                            0,
                            is_original=original,
                            ratio=None if original else p["seconds"] / base[end]["seconds"],
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
        "plenoptic / ours; one run per row)"
    )
    h.printer("\n".join(out))


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.eigendistortion [--full] [--quick] [--repeats N]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eigendistortion",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--full", action="store_true", help="add the long cases")
    parser.add_argument("--quick", action="store_true", help="16 x 16, a smoke run")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each (>= 1)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    print(machine_info())
    h = Harness(repeats=args.repeats, warmup=0, quick=args.quick)
    h.full = args.full  # type: ignore[attr-defined]
    print("\n== eigendistortion ==")
    run(h)
    print(h.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
