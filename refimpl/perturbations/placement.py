"""Where a new ``delta`` lives: its backend, device, shape and dtype, from an array or a shape.

The constructor plumbing of :class:`refimpl.perturbations.AdditivePerturbation`, kept out of
the model's module so that module reads as the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import backends
from refimpl.validation import check_array, check_callable, check_same_place, check_shape

__all__ = ["check_init_args", "check_init_result", "check_new_delta", "delta_placement"]


def delta_placement(
    data_or_shape: Any, device: Any, dtype: Any, backend: str | None
) -> tuple[Any, Any, tuple[int, ...], Any]:
    """``(adapter, device, shape, dtype)`` for ``delta``: an array gives its own (``device``
    and ``dtype`` override them); a shape uses the backend switch (or ``backend=``) and its
    default floating dtype."""
    if isinstance(data_or_shape, Sequence) and not isinstance(data_or_shape, str):
        shape = check_shape("data_or_shape", data_or_shape)
        adapter, dev = backends.resolve(backend, device)
        dt = None
    else:
        if isinstance(data_or_shape, int | float | str | bytes) or data_or_shape is None:
            raise TypeError(
                "data_or_shape must be an array or a tuple of ints, got "
                f"{data_or_shape!r} ({type(data_or_shape).__name__})"
            )
        xp, data_dev = _array_place(data_or_shape)
        adapter = backends.backend_of(xp)
        if backend is not None and backends.get(backend).name != adapter.name:
            raise ValueError(
                f"backend={backend!r} disagrees with data_or_shape, an array of {adapter.name!r}"
            )
        shape = tuple(data_or_shape.shape)
        dev = data_dev if device is None else adapter.device(device)
        dt = data_or_shape.dtype
    if dtype is None and dt is not None:  # delta takes the data's dtype: it must be floating
        check_array(data_or_shape, name="data_or_shape", complex_ok=True)
    return adapter, dev, shape, _floating(adapter, dev, dtype if dtype is not None else dt)


def _array_place(data: Any) -> tuple[Any, Any]:
    """``(xp, device)`` of the array ``data``; TypeError naming ``data_or_shape`` otherwise."""
    try:
        return backends.namespace_and_device(data)
    except TypeError:
        raise TypeError(
            f"data_or_shape must be an array or a tuple of ints, got {type(data).__name__}"
        ) from None


def _floating(adapter: Any, device: Any, dtype: Any) -> Any:
    xp = adapter.xp
    if dtype is None:
        return xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]
    kinds = ("real floating", "complex floating")
    try:
        dt = adapter.dtype(dtype)
        ok = xp.isdtype(dt, kinds)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TypeError(
            f"dtype must be a real or complex floating dtype of {adapter.name}, got {dtype!r}"
        ) from exc
    if not ok:
        raise TypeError(f"dtype must be a real or complex floating dtype, got {dtype!r}")
    return dt


def check_init_result(result: Any, zeros: Any) -> Any:
    """What ``init_fn`` returned: an array of ``delta``'s shape and dtype."""
    if result is None:
        raise TypeError(
            "init_fn returned None: refimpl init functions are functional and must return the "
            "initial delta (in-place functions such as refimpl.torch.uniform_like_l1_n_ball_ "
            "belong to refimpl.torch.AdditivePerturbation)"
        )
    check_array(result, name="init_fn(...) result", complex_ok=True)
    check_same_place(result, zeros, name="init_fn(...) result", ref_name="delta")
    if tuple(result.shape) != tuple(zeros.shape) or result.dtype != zeros.dtype:
        raise ValueError(
            f"init_fn must return an array of shape {tuple(zeros.shape)} and dtype "
            f"{zeros.dtype}, got shape {tuple(result.shape)} and dtype {result.dtype}"
        )
    return result


def check_init_args(init_fn: Any, init_fn_kwargs: dict[str, Any], rng: Any) -> None:
    """``init_fn`` callable or None; no keyword arguments for an ``init_fn`` not given."""
    check_callable("init_fn", init_fn, optional=True)
    if init_fn is None and (init_fn_kwargs or rng is not None):
        given = sorted(init_fn_kwargs) + (["rng"] if rng is not None else [])
        raise TypeError(
            f"no init_fn was given, but the init_fn keyword arguments {given} were: pass "
            "init_fn (e.g. uniform_like_l1_n_ball) or drop them"
        )


def check_new_delta(value: Any, old: Any) -> Any:
    """A replacement ``delta``: a floating array of the old one's library, device, dtype and
    shape. A numpy scalar (0-d numpy arithmetic returns one, not an array) gets the same
    checks, as the 0-d array it stands for."""
    value = _zero_d(value)
    check_array(value, name="delta", complex_ok=True)
    check_same_place(value, old, name="delta", ref_name="the current delta")
    if value.dtype != old.dtype:
        raise TypeError(
            f"delta has dtype {value.dtype} but the current delta has dtype {old.dtype}; cast it"
        )
    if tuple(value.shape) != tuple(old.shape):
        raise ValueError(f"delta must keep the shape {tuple(old.shape)}, got {tuple(value.shape)}")
    return value


def _zero_d(value: Any) -> Any:
    """A numpy scalar as a 0-d array of its own library (``numpy.float64`` subclasses
    ``float``, which ``check_array`` refuses as a Python number); anything else unchanged."""
    if getattr(value, "ndim", None) != 0 or type(value) in (bool, int, float, complex):
        return value
    try:
        xp, _ = backends.namespace_and_device(value)
    except TypeError:  # not an array: check_array says so
        return value
    return xp.asarray(value)
