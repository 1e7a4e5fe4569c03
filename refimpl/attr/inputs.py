"""captum's conventions for what an attribution method receives: ``inputs`` (one array or a
tuple of arrays sharing the batch axis) and ``additional_forward_args`` (anything, a
non-tuple meaning a 1-tuple)."""

from __future__ import annotations

from typing import Any

from refimpl.validation import check_array, check_same_place

__all__ = ["as_args_tuple", "as_input_tuple"]


def as_input_tuple(inputs: Any, *, name: str = "inputs") -> tuple[bool, tuple[Any, ...]]:
    """``(is_tuple, arrays)``: one floating array or a non-empty tuple of them, of one
    namespace and device, with the same leading (batch) size."""
    is_tuple = isinstance(inputs, tuple)
    if isinstance(inputs, list):
        raise TypeError(f"{name} must be an array or a tuple of arrays, got a list (use a tuple)")
    xs = inputs if is_tuple else (inputs,)
    if not xs:
        raise ValueError(f"{name} is an empty tuple; give at least one array")
    for i, x in enumerate(xs):
        check_array(x, name=f"{name}[{i}]" if is_tuple else name)
        if x.ndim < 1:
            raise ValueError(
                f"{name} must have a leading batch axis (shape (B, ...)), got a 0-d array"
            )
    for i, x in enumerate(xs[1:], 1):
        check_same_place(x, xs[0], name=f"{name}[{i}]", ref_name=f"{name}[0]")
    batch = xs[0].shape[0]
    for i, x in enumerate(xs[1:], 1):
        if x.shape[0] != batch:
            raise ValueError(
                f"every input must have the same batch size (axis 0); {name}[0] has {batch} "
                f"rows but {name}[{i}] has {x.shape[0]}"
            )
    return is_tuple, tuple(xs)


def as_args_tuple(args: Any) -> tuple[Any, ...]:
    """``additional_forward_args`` as a tuple: None -> (), a tuple as is, anything else -> (a,)."""
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)
