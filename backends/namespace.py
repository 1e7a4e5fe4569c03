"""Namespace, device and dtype of the arrays a function receives (array-api-compat only)."""

from __future__ import annotations

from typing import Any

import array_api_compat

__all__ = ["floating_dtype", "namespace_and_device", "size", "xp_device"]

_SCALARS = (bool, int, float, complex)


def _arrays(args: tuple) -> list:
    # exact Python scalars only: numpy scalars (np.float64 subclasses float) are arrays here
    return [a for a in args if a is not None and type(a) not in _SCALARS]


def namespace_and_device(*arrays: Any) -> tuple[Any, Any]:
    """``(xp, device)`` shared by ``arrays`` (None and Python scalars are ignored).

    Raises TypeError when the arrays come from different libraries (or are not arrays),
    and ValueError when they live on different devices.
    """
    arrs = _arrays(arrays)
    if not arrs:
        raise TypeError("expected at least one array argument, got none")
    try:
        xp = array_api_compat.array_namespace(*arrs)
    except TypeError as exc:
        kinds = sorted({f"{type(a).__module__}.{type(a).__qualname__}" for a in arrs})
        raise TypeError(
            f"arrays must all come from one array library; got {', '.join(kinds)} ({exc})"
        ) from None
    devices = [array_api_compat.device(a) for a in arrs]
    first = devices[0]
    for d in devices[1:]:
        if d != first:
            raise ValueError(
                f"arrays live on different devices ({first!r} and {d!r}); "
                "move them to one device first"
            )
    return xp, first


def floating_dtype(xp: Any, *arrays: Any, name: str = "x") -> Any:
    """The result floating dtype of ``arrays``; TypeError naming ``name`` if not real floating."""
    arrs = _arrays(arrays)
    for a in arrs:
        if not xp.isdtype(a.dtype, "real floating"):
            raise TypeError(f"{name} must have a real floating dtype, got {a.dtype}")
    return xp.result_type(*arrs)


def xp_device(x: Any) -> Any:
    return array_api_compat.device(x)


def size(x: Any) -> int:
    return int(array_api_compat.size(x))
