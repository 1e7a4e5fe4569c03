"""Batch views selected by ``param_ndim`` (the rai_toolbox convention, validated).

A transformation "per row" acts independently on each sub-array made of the last
``param_ndim`` dimensions:

* ``None``: the whole array is one row;
* ``p >= 0``: each row has the last ``p`` dimensions (``p = 0``: every element is a row);
* ``p < 0``: an offset, ``ndim + p`` trailing dimensions (``-1``: rows are ``x[i]``).

For ``x.shape == (3, 5, 2)``: None or 3 -> (1, 3, 5, 2); 2 or -1 -> (3, 5, 2);
1 or -2 -> (15, 2); 0 or -3 -> (30, 1). Values outside ``[-ndim, ndim]`` raise
ValueError (the documented library silently reinterprets them).
"""

from __future__ import annotations

import math
from typing import Any

from backends import namespace_and_device
from refimpl.validation import check_param_ndim


def row_ndim(param_ndim: int | None, ndim: int, *, name: str = "param_ndim") -> int:
    """How many trailing dimensions form one row."""
    if param_ndim is None:
        return ndim
    param_ndim = check_param_ndim(param_ndim, name=name)
    if abs(param_ndim) > ndim:
        raise ValueError(
            f"{name}={param_ndim} is out of range for an array with {ndim} dimension(s): "
            f"need -{ndim} <= {name} <= {ndim}, or None"
        )
    return param_ndim if param_ndim >= 0 else ndim + param_ndim


def batch_shape(shape: tuple[int, ...], param_ndim: int | None) -> tuple[int, ...]:
    """Shape ``(N, *row)`` of the batch view (``row`` is at least ``(1,)``)."""
    shape = tuple(shape)
    p = row_ndim(param_ndim, len(shape))
    lead, row = shape[: len(shape) - p], shape[len(shape) - p :]
    return (math.prod(lead), *(row or (1,)))


def to_batch(x: Any, param_ndim: int | None) -> Any:
    """``x`` reshaped to ``(N, *row)``; undo with ``xp.reshape(b, x.shape)``."""
    xp, _ = namespace_and_device(x)
    return xp.reshape(x, batch_shape(tuple(x.shape), param_ndim))


def to_rows(x: Any, param_ndim: int | None) -> Any:
    """``x`` reshaped to ``(N, D)``: one flattened row per sub-array."""
    xp, _ = namespace_and_device(x)
    n, *row = batch_shape(tuple(x.shape), param_ndim)
    return xp.reshape(x, (n, math.prod(row)))
