"""Frank-Wolfe steps and L1-ball projections.

* One step of ``L1qFrankWolfe`` (q = 0.3, so 70% of the entries are kept) and of
  ``L1FrankWolfe`` on a float32 parameter of 10^6 and 3*10^7 elements, one row
  (``param_ndim=None``): refimpl (pure ``init``/``update``) on numpy and on torch, the
  ``refimpl.torch.optim`` front end, and rai_toolbox when installed (the ratio's
  reference). rai_toolbox overwrites ``p.grad`` with the transformed gradient, so every
  torch call first copies the gradient back into ``p.grad`` (front end too, for fairness).
  After timing, one step from the same start is checked to give bit-identical parameters.
* ``project_l1_ball`` at n = 10^7 (float64 numpy, float32 torch): the O(n) expected
  Michelot/Condat method vs the sort-based one (results checked identical).

``--quick`` uses 10^3-element parameters and n = 10^4.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

Q, EPS = 0.3, 1.0


def _has_rai() -> bool:
    return importlib.util.find_spec("rai_toolbox") is not None


def _torch_step(cls: Any, x0: Any, g: Any, **kw: Any) -> tuple[Callable[[], None], Any]:
    x = x0.clone().requires_grad_(True)
    x.grad = g.clone()
    opt = cls([x], param_ndim=None, epsilon=EPS, **kw)

    def step() -> None:
        x.grad.copy_(g)
        opt.step()

    return step, x


def _tie_free(n: int, gen: Any) -> Any:
    """n distinct |g| (consecutive float32 bit patterns from 1.0), shuffled, random signs.

    ``randn`` is not enough at 3*10^7 float32 draws: equal magnitudes at the top-q cut-off
    are likely, and torch.topk breaks such ties its own way (see the tie rule).
    """
    import torch

    bits = torch.arange(n, dtype=torch.int32) + 0x3F800000
    mag = bits.view(torch.float32)[torch.randperm(n, generator=gen)]
    sign = torch.randint(0, 2, (n,), generator=gen, dtype=torch.int8) * 2 - 1
    return mag * sign


def _refimpl_step(factory: Callable[..., Any], x: Any, g: Any, **kw: Any) -> Callable[[], Any]:
    opt = factory(param_ndim=None, epsilon=EPS, **kw)
    state = opt.init([x])
    return lambda: opt.update([g], state, [x])


def _first_step_identical(name: str, x0: Any, g: Any, kw: dict, printer: Callable) -> None:
    """One step from x0 on every implementation, compared bit for bit with rai_toolbox."""
    import refimpl.optim as ro
    import refimpl.torch.optim as bo

    factory = {"L1qFrankWolfe": ro.l1q_frank_wolfe, "L1FrankWolfe": ro.l1_frank_wolfe}[name]
    outs = {}
    opt = factory(param_ndim=None, epsilon=EPS, **kw)
    outs["refimpl numpy"] = opt.update([g.numpy()], opt.init([x0.numpy()]), [x0.numpy()])[0][0]
    outs["refimpl torch"] = opt.update([g], opt.init([x0]), [x0])[0][0].numpy()
    step, x = _torch_step(getattr(bo, name), x0, g, **kw)
    step()
    outs["refimpl.torch.optim"] = x.detach().numpy()
    if not _has_rai():
        return
    import rai_toolbox.optim as rai

    step, x = _torch_step(getattr(rai, name), x0, g, **kw)
    step()
    ref = x.detach().numpy()
    same = ", ".join(
        f"{k}: {'identical' if np.array_equal(v, ref) else 'DIFFERENT'}" for k, v in outs.items()
    )
    printer(f"  {name} n={x0.numel()}: one step vs rai_toolbox -> {same}")


def _fw(h: Any, name: str, n: int, kw: dict) -> None:
    import torch

    import refimpl.optim as ro
    import refimpl.torch.optim as bo

    factory = {"L1qFrankWolfe": ro.l1q_frank_wolfe, "L1FrankWolfe": ro.l1_frank_wolfe}[name]
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(n, generator=gen) * 1e-3
    g = _tie_free(n, gen)
    ours = {
        "refimpl numpy": _refimpl_step(factory, x0.numpy(), g.numpy(), **kw),
        "refimpl torch": _refimpl_step(factory, x0, g, **kw),
        "refimpl.torch.optim": _torch_step(getattr(bo, name), x0, g, **kw)[0],
    }
    original = None
    if _has_rai():
        import rai_toolbox.optim as rai

        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        original = ("rai_toolbox", _torch_step(getattr(rai, name), x0, g, **kw)[0])
    h.compare(f"{name} step n={n:.0e}", ours, original=original)
    _first_step_identical(name, x0, g, kw, h.printer)


def _projection(h: Any) -> None:
    import torch

    from refimpl.optim import project_l1_ball

    n = 10**4 if h.quick else 10**7
    x_np = np.random.default_rng(0).standard_normal(n)
    x_t = torch.from_numpy(x_np).to(torch.float32)
    radius = 0.1 * float(np.abs(x_np).sum())  # about half of the entries survive
    for label, x in (("numpy float64", x_np), ("torch float32", x_t)):
        rows = h.compare(
            f"project_l1_ball n={n:.0e} {label}",
            {
                "sort (Duchi)": lambda x=x: project_l1_ball(x, radius, method="sort"),
                "michelot (Condat)": lambda x=x: project_l1_ball(x, radius, method="michelot"),
            },
        )
        a = project_l1_ball(x, radius, method="sort")
        b = project_l1_ball(x, radius, method="michelot")
        same = bool((a == b).all())
        h.printer(
            f"  {label}: sort / michelot median time = {rows[0].median / rows[1].median:.2f}x; "
            f"results {'identical' if same else 'DIFFERENT'}"
        )


def run(h: Any) -> None:
    sizes = (10**3,) if h.quick else (10**6, 3 * 10**7)
    for n in sizes:
        _fw(h, "L1qFrankWolfe", n, dict(q=Q))
        _fw(h, "L1FrankWolfe", n, {})
    _projection(h)
