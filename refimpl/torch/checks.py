"""Argument checks shared by the torch front ends, in the wording of
:mod:`refimpl.validation` (which serves the array-API code and knows no torch).

* :func:`check_tensor`: a ``torch.Tensor`` (TypeError naming the argument otherwise);
* :func:`check_values`: not on the ``meta`` device (shapes without values), for the
  algorithms that read values;
* :func:`check_device`: a device spec torch can allocate on here (``torch.device``, a string
  such as ``"cpu"`` or ``"cuda:0"``, or an accelerator index);
* :func:`check_same_device`: two tensors torch can combine (the same device, or one a CPU
  scalar tensor, as torch's elementwise operations allow); torch's own error is a
  RuntimeError from deep inside the operation;
* :func:`check_scalar_fits`: a Python number that torch can apply to tensors of the given
  dtypes (finite there, and an int within the 64 bits torch's scalar arguments take).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import torch

from refimpl.validation import check_fits

__all__ = [
    "check_device",
    "check_same_device",
    "check_scalar_fits",
    "check_tensor",
    "check_values",
    "kind",
]

#: the range of torch's integer scalar arguments (``Tensor.add_(..., alpha=n)``, ...)
_INT64 = (-(2**63), 2**63 - 1)


def kind(x: Any) -> str:
    """``x``'s type as errors name it: ``int`` for builtins, ``numpy.ndarray`` otherwise."""
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def check_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` itself when it is a ``torch.Tensor``; TypeError naming ``name`` otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {kind(x)} (convert arrays with torch.as_tensor)"
        )
    return x


def check_values(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` itself unless it lives on the ``meta`` device, which holds shapes but no values:
    a ValueError naming ``name`` for the front ends whose algorithms read values (checks of
    finiteness, norms, convergence tests; torch's own error is a RuntimeError from
    ``Tensor.item()``)."""
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is on the meta device, which holds no values to compute with; "
            "materialise it first (e.g. torch.empty_like(x, device='cpu'))"
        )
    return x


def check_device(name: str, spec: Any) -> torch.device:
    """``spec`` as a ``torch.device`` on which torch can allocate here: TypeError unless it is
    a ``torch.device``, a string or an int index; ValueError for an unknown device, an index
    out of range or a device this machine lacks (torch's own errors are RuntimeErrors and,
    for CUDA without a GPU, an AssertionError)."""
    if isinstance(spec, bool) or not isinstance(spec, str | torch.device | numbers.Integral):
        raise TypeError(
            f"{name} must be a torch.device, a device string such as 'cpu' or 'cuda:0', or an "
            f"accelerator index, got {spec!r} ({kind(spec)})"
        )
    try:
        device = torch.device(int(spec) if isinstance(spec, numbers.Integral) else spec)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"{name}={spec!r} is not a device torch can use here ({exc})") from None
    return device


def check_same_device(a: torch.Tensor, ref: torch.Tensor, *, name: str, ref_name: str) -> None:
    """ValueError naming both unless torch can combine ``a`` and ``ref`` elementwise: the
    same device, or one of them a CPU scalar (0-d) tensor."""
    if a.device == ref.device:
        return
    if any(t.ndim == 0 and t.device.type == "cpu" for t in (a, ref)):
        return
    raise ValueError(
        f"{name} is on {a.device} but {ref_name} is on {ref.device}; move one of them "
        f"(e.g. {name}.to({ref_name}.device))"
    )


def check_scalar_fits(name: str, value: Any, dtypes: Iterable[torch.dtype]) -> None:
    """ValueError unless the real number ``value`` (already checked as one) can multiply or
    shift tensors of every floating dtype in ``dtypes``: within the dtype's largest finite
    value (``refimpl.validation.check_fits``) and, for an int, within 64 bits."""
    if isinstance(value, torch.Tensor):
        value = float(value)
    if isinstance(value, numbers.Integral) and not _INT64[0] <= int(value) <= _INT64[1]:
        raise ValueError(
            f"{name}={value!r} is an int beyond the 64 bits torch's scalar arguments take; "
            "pass it as a float"
        )
    for dtype in set(dtypes):
        if dtype.is_floating_point:
            check_fits(name, float(value), dtype, torch)
