"""Uniform Lp-ball samplers: 10^7 float32 elements per draw (10^4 with ``--quick``).

Shape (N, 1000) with ``param_ndim=-1`` (N independent 1000-dimensional rows). Compared:
refimpl on numpy (numpy Generator) and on torch (torch.Generator), the in-place torch front
end ``refimpl.torch.uniform_like_*_n_ball_``, and rai_toolbox's in-place samplers when
installed (the ratio's reference). Each call draws a fresh sample into a preallocated tensor
(front end, original) or returns a new array (refimpl).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

ROW = 1000
KINDS = ("l1", "l2", "linf")


def _refimpl(name: str, x: Any, rng: Any) -> Callable[[], Any]:
    from refimpl.perturbations import samplers

    fn = getattr(samplers, f"uniform_like_{name}_n_ball")
    return lambda: fn(x, 1.0, -1, rng=rng)


def _in_place(fn: Callable[..., None], x: Any, generator: Any) -> Callable[[], None]:
    return lambda: fn(x, 1.0, -1, generator=generator)


def run(h: Any) -> None:
    import torch

    import backends
    import refimpl.torch as bt

    n = 10**4 if h.quick else 10**7
    shape = (n // ROW, ROW)
    rai = None
    if importlib.util.find_spec("rai_toolbox") is not None:
        import rai_toolbox.perturbations as rai

    x_np = backends.get("numpy").asarray(np.zeros(shape, dtype=np.float32))
    x_t = torch.zeros(shape, dtype=torch.float32)
    np_rng = backends.as_rng(0, backend="numpy")
    t_rng = backends.as_rng(torch.Generator().manual_seed(0), like=x_t)
    for name in KINDS:
        front = getattr(bt, f"uniform_like_{name}_n_ball_")
        ours = {
            "refimpl numpy": _refimpl(name, x_np, np_rng),
            "refimpl torch": _refimpl(name, x_t, t_rng),
            "refimpl.torch (front end)": _in_place(
                front, torch.zeros(shape), torch.Generator().manual_seed(0)
            ),
        }
        original = None
        if rai is not None:
            orig = getattr(rai, f"uniform_like_{name}_n_ball_")
            original = ("rai_toolbox", _in_place(orig, torch.zeros(shape), torch.Generator()))
        # Warm every contender up once more: the first one timed otherwise pays for the
        # allocator's growth (seen as a spurious 0.6x for the others on l1).
        for fn in [*ours.values(), *([original[1]] if original else [])]:
            fn()
        h.compare(
            f"uniform_like_{name}_n_ball {shape} float32",
            ours,
            original=original,
            note=f"{n} elements, param_ndim=-1",
        )
