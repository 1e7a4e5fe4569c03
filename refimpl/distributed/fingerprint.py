"""Fingerprints: which function and which item made a result file.

:func:`function_fingerprint` names a function by its qualified name and a SHA-256 of what
it computes with:

* a Python function: its bytecode, constants (nested functions and lambdas included),
  the names it looks up, its default arguments and the values its closure holds;
* a ``functools.partial``: the function's fingerprint and the arguments bound to it;
* a bound method: the function's, and the object's data (below); a callable object: its
  class's ``__call__`` and its data.

:func:`digest` hashes data: numbers, strings, paths, tuples, lists, dicts and sets by
value, arrays of any backend by dtype, shape and bytes, an object with a ``state_dict()``
(a torch module) by that dict, and any other object by its type's name only.

What a fingerprint does not see: the global functions and modules a function calls, the
content of a file a path names, and the state of objects that are neither arrays nor
``state_dict`` holders. Give ``map_dataset`` a ``name=`` (say ``"saliency-v2"``) to name a
version of the computation yourself. Bytecode changes between Python releases, so results
written by another Python minor version are recomputed (under a ``name=``, they are not).
"""

from __future__ import annotations

import functools
import hashlib
import os
import types
from typing import Any

import numpy as np

import backends

__all__ = ["digest", "function_fingerprint"]

#: how deep data nested in data is followed (closures holding closures, dicts of dicts)
_DEPTH = 8


def _update(h: Any, tag: str, payload: bytes = b"") -> None:
    h.update(f"{tag}:{len(payload)}:".encode())
    h.update(payload)


def _array(h: Any, x: np.ndarray) -> None:
    x = np.asarray(x, order="C")
    _update(h, "array", f"{x.dtype.str}{x.shape}".encode())
    if x.dtype.hasobject:
        for v in x.ravel():
            _feed(h, v, _DEPTH - 1)
    else:
        _update(h, "bytes", x.tobytes())


def _code(h: Any, code: types.CodeType, depth: int) -> None:
    _update(h, "code", code.co_code)
    _update(h, "names", repr((code.co_names, code.co_varnames)).encode())
    for const in code.co_consts:
        _feed(h, const, depth - 1)


def _feed(h: Any, obj: Any, depth: int) -> None:
    """Hash ``obj`` into ``h`` by value (see the module docstring)."""
    if depth <= 0:
        _update(h, "deep", type(obj).__qualname__.encode())
    elif obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        _update(h, type(obj).__name__, repr(obj).encode())
    elif isinstance(obj, os.PathLike):
        _update(h, "path", os.fsencode(obj))
    elif isinstance(obj, tuple | list):
        _update(h, type(obj).__name__, str(len(obj)).encode())
        for v in obj:
            _feed(h, v, depth - 1)
    elif isinstance(obj, dict):
        _update(h, "dict", str(len(obj)).encode())
        for k in sorted(obj, key=repr):
            _feed(h, k, depth - 1)
            _feed(h, obj[k], depth - 1)
    elif isinstance(obj, set | frozenset):  # ordered by value: the order of a set varies
        _update(h, "set", b"".join(sorted(digest(v).encode() for v in obj)))
    elif isinstance(obj, np.ndarray | np.generic):
        _array(h, obj)
    elif isinstance(obj, types.CodeType):
        _code(h, obj, depth)
    elif callable(obj) and _callable(h, obj, depth):
        pass
    elif _is_array(obj):
        _array(h, backends.backend_of(obj).to_numpy(obj))
    elif callable(getattr(obj, "state_dict", None)):
        _update(h, "state", _qualname(type(obj)).encode())
        _feed(h, dict(obj.state_dict()), depth - 1)
    else:
        name = getattr(obj, "__name__", "")
        _update(h, "object", f"{_qualname(type(obj))}:{name}".encode())


def _is_array(obj: Any) -> bool:
    try:
        backends.backend_of(obj)
    except TypeError:
        return False
    return True


def _callable(h: Any, fn: Any, depth: int) -> bool:
    """Hash a function, partial or method into ``h``; False for another callable."""
    if isinstance(fn, functools.partial):
        _update(h, "partial")
        _feed(h, fn.func, depth - 1)
        _feed(h, fn.args, depth - 1)
        _feed(h, fn.keywords, depth - 1)
    elif isinstance(fn, types.MethodType):
        _update(h, "method")
        _feed(h, fn.__func__, depth - 1)
        _data(h, fn.__self__, depth - 1)
    elif isinstance(fn, types.FunctionType):
        _update(h, "function", _qualname(fn).encode())
        _code(h, fn.__code__, depth)
        _feed(h, fn.__defaults__, depth - 1)
        _feed(h, fn.__kwdefaults__, depth - 1)
        cells = [c.cell_contents for c in fn.__closure__ or () if _filled(c)]
        _feed(h, cells, depth - 1)
    elif isinstance(fn, types.BuiltinFunctionType | type):
        _update(h, "builtin", _qualname(fn).encode())
    else:
        return False
    return True


def _data(h: Any, obj: Any, depth: int) -> None:
    """The data of an object whose method or ``__call__`` is fingerprinted."""
    if callable(getattr(obj, "state_dict", None)) or _is_array(obj):
        _feed(h, obj, depth)
    else:
        _update(h, "object", _qualname(type(obj)).encode())


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}" if module else name


def digest(obj: Any) -> str:
    """``"sha256:<hex>"`` of ``obj``'s value (see the module docstring)."""
    h = hashlib.sha256()
    _feed(h, obj, _DEPTH)
    return "sha256:" + h.hexdigest()


def function_fingerprint(fn: Any, name: str | None = None) -> dict:
    """``{"name": qualified name, "code": "sha256:..."}`` for ``fn``; with ``name`` given,
    ``{"name": name}`` alone (the user names the version of the computation)."""
    if name is not None:
        return {"name": name}
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    target = getattr(target, "__func__", target)
    h = hashlib.sha256()
    if isinstance(fn, types.FunctionType | types.MethodType | functools.partial):
        _feed(h, fn, _DEPTH)
    elif isinstance(fn, types.BuiltinFunctionType | type):
        _callable(h, fn, _DEPTH)
    else:  # a callable object: its class's __call__ and its data
        target = type(fn)
        _update(h, "instance", _qualname(target).encode())
        _feed(h, getattr(target.__call__, "__func__", target.__call__), _DEPTH - 1)
        _data(h, fn, _DEPTH - 1)
    return {"name": _qualname(target), "code": "sha256:" + h.hexdigest()}
