"""Seed 000: rai_toolbox's ``AdditivePerturbation`` page (and its init functions' examples).

Source: the rai-toolbox 0.2.1 documentation, ``AdditivePerturbation`` page, and the
docstrings of ``rai_toolbox.perturbations.init``; the documented library's behaviour from
rai_toolbox 0.2.1 itself (its source and its draws).

The cases call the target operations ``additive_perturbation`` and ``sample_ball``
(``conformance/targets/base.py``); a target that reproduces torch's draws (``draws_like_torch``)
is checked against the printed digits, any other against ball membership and the exact
arithmetic of the documented delta.

Columns
    torch: ``refimpl.perturbations`` on torch tensors (rng = the documented
    ``torch.Generator().manual_seed(s)``) and the front end ``refimpl.torch`` (the documented
    code with the import changed); both reproduce the release's draws bit for bit.
    numpy, array_api_strict: cannot reproduce torch's RNG, so the delta cases check shape,
    dtype, device and ball membership, and the downstream cases the exact arithmetic from the
    documented delta. rai_toolbox: the documented library itself.

The printed deltas are all positive: the page was generated (2022-05-02) with the old
positive-only L1 init; since v0.1.1 (PR #46) the sampler draws random signs, as a uniform
L1-ball sampler must. The documented values equal ``abs()`` of what 0.2.1 draws. Those
cases are ERRATA: |delta| is checked against the printed digits, the signs against the
release, and ``pert_data`` and the gradients as exact arithmetic of the delta drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance import registry as reg

SEED = "rai-toolbox 0.2.1 docs, AdditivePerturbation page"
COMPONENT = "refimpl.perturbations.AdditivePerturbation + uniform_like_l1_n_ball"
PRINTED = 5e-5  # half a unit of the 4th printed decimal
ERRATUM = (
    "the page prints |delta|: it was generated with the old positive-only L1 init; 0.2.1 "
    "draws the same magnitudes with random signs (PR #46). Checked: |delta| vs the printed "
    "digits, signs vs the release, downstream values as arithmetic of the delta drawn"
)

# -- documented values (the page) and the release's signs (rai_toolbox 0.2.1's draws) --------
DOC_DELTA_0 = [
    [[0.0885, 0.0436], [0.3642, 0.2720]],
    [[0.3074, 0.1827], [0.1440, 0.2624]],
    [[0.3489, 0.0528], [0.0539, 0.1767]],
]
DOC_PERT_0 = [
    [[1.0885, 1.0436], [1.3642, 1.2720]],
    [[1.3074, 1.1827], [1.1440, 1.2624]],
    [[1.3489, 1.0528], [1.0539, 1.1767]],
]
DOC_GRAD_0 = [
    [[2.1770, 2.0871], [2.7285, 2.5439]],
    [[2.6148, 2.3653], [2.2880, 2.5247]],
    [[2.6978, 2.1056], [2.1078, 2.3534]],
]
SIGNS_0 = [[[-1, -1], [-1, 1]], [[1, 1], [-1, -1]], [[1, 1], [-1, 1]]]
RELEASE_GRAD_0 = [
    [[1.8230, 1.9129], [1.2715, 2.5439]],
    [[2.6148, 2.3653], [1.7120, 1.4753]],
    [[2.6978, 2.1056], [1.8922, 2.3534]],
]
DOC_DELTA_1 = [[0.2793, 0.4783], [0.4031, 0.3316]]
DOC_PERT_1 = [[[1.2793, 1.4783], [1.4031, 1.3316]]] * 3
DOC_GRAD_1 = [[0.6397, 0.7392], [0.7015, 0.6658]]
SIGNS_1 = [[-1, 1], [-1, 1]]
RELEASE_GRAD_1 = [[0.3603, 0.7392], [0.2985, 0.6658]]

ELEMENTWISE = dict(seed=0, delta_ndim=None, doc=DOC_DELTA_0, signs=SIGNS_0)
BROADCAST = dict(seed=1, delta_ndim=-1, doc=DOC_DELTA_1, signs=SIGNS_1)


# -- running the example on a target --------------------------------------------------------
DATA = np.ones((3, 2, 2), dtype=np.float32)


def _runs(ctx: reg.Context, ex: dict, reduction: str, documented_delta: bool) -> list:
    """(implementation, run) for each implementation of the column. One that cannot
    reproduce torch's draws gets the documented delta when ``documented_delta``."""
    out = []
    for impl in ctx.implementations("additive_perturbation"):
        delta = ex["doc"] if documented_delta and not impl.draws_like_torch else None
        run = impl.additive_perturbation(
            DATA, delta_ndim=ex["delta_ndim"], seed=ex["seed"], reduction=reduction, delta=delta
        )
        out.append((impl, run))
    return out


# -- cases ------------------------------------------------------------------------------
def _delta_case(ex: dict, shape: tuple[int, ...]):
    def run(ctx: reg.Context) -> None:
        for impl, r in _runs(ctx, ex, "sum", documented_delta=False):
            impl.assert_native(r.native, shape, "float32")
            # uniform in the L1 ball: every row (param_ndim=-1: delta[i]) has norm < 1
            rows = r.delta.reshape(shape[0], -1).astype(np.float64)
            assert np.all(np.abs(rows).sum(axis=1) < 1.0), (
                f"{impl.label}: a row is outside the ball"
            )
            if impl.draws_like_torch:
                ctx.assert_close(np.abs(r.delta), ex["doc"], f"{impl.label} |delta|", atol=PRINTED)
                got = np.sign(r.delta)
                assert np.array_equal(got, ex["signs"]), (
                    f"{impl.label} signs {got}, release {ex['signs']}"
                )

    return run


def _pert_case(ex: dict, doc_pert: Any):
    def run(ctx: reg.Context) -> None:
        for impl, r in _runs(ctx, ex, "sum", documented_delta=True):
            # exact float32 arithmetic of the delta drawn (or documented)
            expected = np.ones(r.pert.shape, np.float32) + r.delta.astype(np.float32)
            ctx.assert_close(r.pert, expected, f"{impl.label} pert_data = 1 + delta")
            if impl.draws_like_torch:  # |delta| printed, so |pert - 1| is the printed part
                ctx.assert_close(
                    np.abs(r.pert - 1), np.asarray(doc_pert) - 1, impl.label, atol=2 * PRINTED
                )
            else:
                ctx.assert_close(r.pert, doc_pert, f"{impl.label} pert_data", atol=PRINTED)

    return run


def _grad_case(ex: dict, reduction: str, doc_grad: Any, release_grad: Any):
    def run(ctx: reg.Context) -> None:
        for impl, r in _runs(ctx, ex, reduction, documented_delta=True):
            label = impl.label
            one_plus = np.float32(1.0) + r.delta.astype(np.float32)
            if reduction == "sum":  # 2 (1 + delta): exact in float32
                ctx.assert_close(r.grad, 2 * one_plus, f"{label} grad = 2(1 + delta)")
            else:  # sum over the batch of 3 of 2 (1 + delta) / 12 = (1 + delta) / 2, to rounding
                ctx.assert_close(r.grad, one_plus / 2, f"{label} grad = (1 + delta)/2", rtol=1e-6)
            if impl.draws_like_torch:
                ctx.assert_close(r.grad, release_grad, f"{label} grad (release)", atol=PRINTED)
            else:  # from the rounded documented delta: printed error scaled by the derivative
                scale = 2.0 if reduction == "sum" else 0.5
                ctx.assert_close(r.grad, doc_grad, f"{label} grad", atol=PRINTED * (1 + scale))

    return run


def _broadcast_shape(ctx: reg.Context) -> None:
    """delta_ndim=-1 on (3, 2, 2) data: a (2, 2) delta added to each datum."""
    for impl, r in _runs(ctx, BROADCAST, "mean", documented_delta=False):
        shapes = (r.delta.shape, r.pert.shape, r.grad.shape)
        assert shapes == ((2, 2), (3, 2, 2), (2, 2)), f"{impl.label}: shapes {shapes}"
        assert np.array_equal(r.pert[0], r.pert[1]) and np.array_equal(r.pert[1], r.pert[2])


def _register() -> None:
    base = dict(source=SEED, component=COMPONENT, originals=("rai_toolbox",))
    src_b = f"{SEED}, Broadcasted (Universal) Perturbations"
    src_a = f"{SEED}, Basic Additive Perturbations"
    cases = [
        ("000.additive.elementwise.delta", src_a, _delta_case(ELEMENTWISE, (3, 2, 2)),
         "pert_model.delta of the seed-0 example (3, 2, 2)"),
        ("000.additive.elementwise.pert_data", src_a, _pert_case(ELEMENTWISE, DOC_PERT_0),
         "pert_model(data) = data + delta"),
        ("000.additive.elementwise.grad_sum", src_a,
         _grad_case(ELEMENTWISE, "sum", DOC_GRAD_0, RELEASE_GRAD_0),
         "delta.grad of (pert_data ** 2).sum(): 2 (1 + delta)"),
        ("000.additive.broadcast.delta", src_b, _delta_case(BROADCAST, (2, 2)),
         "pert_model.delta of the seed-1 example with delta_ndim=-1"),
        ("000.additive.broadcast.pert_data", src_b, _pert_case(BROADCAST, DOC_PERT_1),
         "broadcast addition of the (2, 2) delta over the batch"),
        ("000.additive.broadcast.grad_mean", src_b,
         _grad_case(BROADCAST, "mean", DOC_GRAD_1, RELEASE_GRAD_1),
         "delta.grad of (pert_data ** 2).mean(): (1 + delta) / 2"),
    ]  # fmt: skip
    for cid, src, fn, what in cases:
        check = reg.erratum(ERRATUM, rtol=1e-6 if "mean" in cid else 0.0)
        reg.case(cid, check=check, description=what, **{**base, "source": src})(fn)
    reg.case(
        "000.additive.broadcast.shape",
        check=reg.exact(),
        description="delta_ndim=-1: delta (2, 2), pert_data (3, 2, 2), grad (2, 2)",
        **{**base, "source": src_b},
    )(_broadcast_shape)


_register()


# -- the init functions' docstring examples (rai_toolbox 0.2.1 perturbations/init.py) -------
INIT_SOURCE = "rai_toolbox 0.2.1 perturbations/init.py docstrings"
INIT_EXAMPLES = [
    # id, sampler, param_ndim, ord of the norm, axis of the norm (None: whole), documented
    ("000.init.l1.rows", "l1", -1, 1, 1, [True, True]),
    ("000.init.l1.whole", "l1", 2, 1, None, True),
    ("000.init.l2.rows", "l2", 1, 2, 1, [True, True]),
    ("000.init.l2.whole", "l2", 2, 2, None, True),
    ("000.init.linf.box", "linf", None, None, None, [[True] * 3] * 2),
]


def _init_case(kind: str, param_ndim: int | None, ord: int | None, axis: int | None, doc: Any):
    def run(ctx: reg.Context) -> None:
        for impl in ctx.implementations("sample_ball"):
            # x = zeros(2, 3), then the sampler with epsilon=2 (the examples are unseeded)
            x = impl.sample_ball(kind, np.zeros((2, 3)), epsilon=2.0, param_ndim=param_ndim)
            x = x.astype(np.float64)
            if kind == "linf":
                got = np.abs(x) < 2.0
            elif axis is None:
                got = np.linalg.norm(x.ravel(), ord=ord) < 2.0
            else:
                got = np.linalg.norm(x, ord=ord, axis=axis) < 2.0
            assert np.array_equal(got, doc), f"{impl.label}: {got.tolist()}, documented {doc}"

    return run


for _id, _kind, _pn, _ord, _axis, _doc in INIT_EXAMPLES:
    reg.case(
        _id,
        source=INIT_SOURCE,
        component=f"refimpl.perturbations.uniform_like_{_kind}_n_ball",
        check=reg.exact(),
        description=f"uniform_like_{_kind}_n_ball_(zeros(2, 3), epsilon=2.0, param_ndim={_pn}) "
        "lies in the ball",
        originals=("rai_toolbox",),
    )(_init_case(_kind, _pn, _ord, _axis, _doc))
