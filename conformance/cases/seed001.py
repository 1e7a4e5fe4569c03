"""Seed 001: ``rai_toolbox.optim.L1qFrankWolfe`` and the other Frank-Wolfe docstring examples.

Source: the rai-toolbox 0.2.1 documentation, ``L1qFrankWolfe`` page, and the docstring
examples of rai_toolbox 0.2.1's ``rai_toolbox/optim/frank_wolfe.py`` and ``optim/misc.py``.
On the backend columns the examples run through
``refimpl.optim`` (on torch also through the ``refimpl.torch.optim`` front end); on the
``rai_toolbox`` column through the documented library itself (target operations
``optimizer_steps``, ``frank_wolfe_step_size``, ``top_q_gradient``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.registry import Context, case, erratum, exact, tolerance

SEED = "rai-toolbox 0.2.1 docs, L1qFrankWolfe page"
FW_SOURCE = "rai_toolbox 0.2.1 optim/frank_wolfe.py"


def _one_step(ctx: Context, name: str, x0: list, grad: list, **kw: Any) -> list[np.ndarray]:
    """x after one step on every implementation the column offers (float32, as documented)."""
    impls = ctx.implementations("optimizer_steps")
    return [impl.optimizer_steps(name, x0, [grad], **kw)[-1] for impl in impls]


@case(
    "001.l1q_frank_wolfe.docstring",
    source=f"{SEED}, Examples",
    component="refimpl.optim.L1qFrankWolfe",
    check=tolerance(rtol=1e-6, atol=1e-7),
    originals=("rai_toolbox",),
)
def l1q_docstring(ctx: Context) -> None:
    """x=[1,1,1], grad [0,1,2], q=0.30, epsilon=1.8, param_ndim=None -> [0,-0.9,-0.9], |x|_1=1.8"""
    for out in _one_step(
        ctx, "L1qFrankWolfe", [1.0, 1.0, 1.0], [0.0, 1.0, 2.0], q=0.30, epsilon=1.8, param_ndim=None
    ):
        ctx.assert_close(out, [0.0, -0.9, -0.9], "x")
        ctx.assert_close(float(np.abs(out).sum()), 1.8, "L1 norm of x")


@case(
    "001.l1_frank_wolfe.docstring",
    source=FW_SOURCE + ", L1FrankWolfe docstring (line 357)",
    component="refimpl.optim.L1FrankWolfe",
    check=tolerance(rtol=1e-6, atol=1e-7),
    originals=("rai_toolbox",),
)
def l1_docstring(ctx: Context) -> None:
    """x=[1,1], grad [1,2], epsilon=1.8, param_ndim=None -> [0,-1.8]"""
    for out in _one_step(ctx, "L1FrankWolfe", [1.0, 1.0], [1.0, 2.0], epsilon=1.8, param_ndim=None):
        ctx.assert_close(out, [0.0, -1.8], "x")


@case(
    "001.l2_frank_wolfe.docstring",
    source=FW_SOURCE + ", L2FrankWolfe docstring (line 474)",
    component="refimpl.optim.L2FrankWolfe",
    check=tolerance(rtol=0.0, atol=5e-5),
    originals=("rai_toolbox",),
)
def l2_docstring(ctx: Context) -> None:
    """x=[1,1], grad [1,2], epsilon=1.8, param_ndim=None -> [-0.8050,-1.6100] (4 digits)"""
    for out in _one_step(ctx, "L2FrankWolfe", [1.0, 1.0], [1.0, 2.0], epsilon=1.8, param_ndim=None):
        ctx.assert_close(out, [-0.8050, -1.6100], "x")


@case(
    "001.linf_frank_wolfe.docstring",
    source=FW_SOURCE + ", LinfFrankWolfe docstring (line 534)",
    component="refimpl.optim.LinfFrankWolfe",
    check=erratum(
        "the LinfFrankWolfe docstring imports LinfFrankWolfe but constructs L2FrankWolfe, which "
        "prints [-0.8050, -1.6100]; the documented [-1.8000, -1.8000] is what LinfFrankWolfe "
        "gives. Checked: LinfFrankWolfe -> [-1.8, -1.8] and the code as written -> "
        "[-0.8050, -1.6100].",
        atol=5e-5,
    ),
    originals=("rai_toolbox",),
)
def linf_docstring(ctx: Context) -> None:
    """x=[1,1], grad [1,2], epsilon=1.8, param_ndim=None -> [-1.8,-1.8] (LinfFrankWolfe)"""
    for out in _one_step(
        ctx, "LinfFrankWolfe", [1.0, 1.0], [1.0, 2.0], epsilon=1.8, param_ndim=None
    ):
        ctx.assert_close(out, [-1.8, -1.8], "LinfFrankWolfe x")
    for out in _one_step(ctx, "L2FrankWolfe", [1.0, 1.0], [1.0, 2.0], epsilon=1.8, param_ndim=None):
        ctx.assert_close(out, [-0.8050, -1.6100], "x from the docstring's code (L2FrankWolfe)")


# -- the schedule lr / (lr + k) over several steps -------------------------------------------

_GRADS = [[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [1.0, 0.5], [-0.5, 1.0]]


def _schedule_reference(lr: float, eps: float, x0: list) -> list[np.ndarray]:
    """float64 iterates of LinfFrankWolfe: alpha_k = lr/(lr+k), s_k = -eps sign(g_k)."""
    x = np.asarray(x0, dtype=np.float64)
    out = []
    for k, g in enumerate(_GRADS):
        alpha = lr / (lr + k)
        x = (1 - alpha) * x + alpha * (-eps * np.sign(np.asarray(g)))
        out.append(x)
    return out


@case(
    "001.frank_wolfe.schedule",
    source=f"{SEED}, use_default_lr_schedule (lr/(lr+k), k from 0)",
    component="refimpl.optim.LinfFrankWolfe",
    check=tolerance(rtol=1e-6, atol=1e-7),
    originals=("rai_toolbox",),
)
def schedule(ctx: Context) -> None:
    """6 steps with lr=2 and lr=0.5: x_k+1 = (1-a_k) x_k + a_k s_k, a_k = lr/(lr+k)"""
    x0, eps = [0.5, -0.25], 1.5
    for lr in (2.0, 0.5):
        ref = _schedule_reference(lr, eps, x0)
        for impl in ctx.implementations("optimizer_steps"):
            steps = impl.optimizer_steps(
                "LinfFrankWolfe", x0, _GRADS, epsilon=eps, lr=lr, param_ndim=None
            )
            for x, r in zip(steps, ref, strict=True):
                ctx.assert_close(x, r, f"{impl.label} lr={lr} iterate")
            if impl.supports("frank_wolfe_step_size"):
                alphas = [impl.frank_wolfe_step_size(lr, k) for k in range(4)]
                ctx.assert_close(np.asarray(alphas), [lr / (lr + k) for k in range(4)], "alpha_k")


# -- TopQ: the top-q rule k = round((1 - q) D) -----------------------------------------------

_TOPQ_GRAD = [[0.5, 1.0], [-2.5, 0.30]]
_TOPQ_DOC = {
    0.0: [[0.5, 1.0], [-2.5, 0.3]],
    0.25: [[0.5, 1.0], [-2.5, 0.0]],
    0.5: [[0.0, 1.0], [-2.5, 0.0]],
    0.75: [[0.0, 0.0], [-2.5, 0.0]],
    1.0: [[0.0, 0.0], [0.0, 0.0]],
}


@case(
    "001.top_q.docstring",
    source="rai_toolbox 0.2.1 optim/misc.py, TopQGradientOptimizer docstring (line 253)",
    component="refimpl.optim.top_q_gradient",
    check=exact(),
    originals=("rai_toolbox",),
)
def top_q_docstring(ctx: Context) -> None:
    """gradient [[0.5,1],[-2.5,.3]], param_ndim=None, q in {0,.25,.5,.75,1} -> documented grads"""
    for impl in ctx.implementations("top_q_gradient"):
        for q, doc in _TOPQ_DOC.items():
            out = impl.top_q_gradient(_TOPQ_GRAD, q, param_ndim=None)
            expected = np.asarray(doc, dtype=np.float32)
            ctx.assert_close(np.asarray(out, dtype=np.float32), expected, f"{impl.label} q={q}")
