"""Shared helpers of the bad-input sweep (the rules of docs/design.md, "bad input").

The rule, for every public entry point and every argument replaced by a bad value:

* the call returns a result of the right kind: every array of the valid call's result has a
  counterpart of the same library, on the same device, with no NaN/inf where the valid result
  had none (a shape check is the test's ``check``); or
* it raises TypeError or ValueError whose message names the argument;
* never another exception type (AttributeError, IndexError, RuntimeError, OverflowError, a
  library's internal error...), never a hang (each call runs under a time budget), and no
  input array is modified.

The API (other test files import it: add to it, never rename):

``sweep(fn, valid, table, *, names=None, check=None, expect=None, budget_s=BUDGET_S)``
    ``fn(**valid)`` must succeed; then ``fn(**{**valid, arg: value})`` must keep the rule for
    every ``table[arg][label] = value``. Fails once, listing every case that broke it.
    ``valid`` may be a zero-argument callable returning fresh kwargs (stateful objects);
    ``expect(result, kwargs)`` checks a returned result against the call's arguments.
``check_outcome(call, *, names, ref=None, check=None, outcome="either", finite=True,
budget_s=BUDGET_S, place=None)``
    the rule for one zero-argument ``call`` (for hypothesis tests); returns the result or
    the TypeError/ValueError raised. When the call's only array argument was replaced by
    one of another library or device, the result must follow it (``sweep`` does this).
``Bad(value, outcome="either", finite=True, note="")``, ``accept(value, note)``,
``reject(value, note)``
    a table value with an expectation (plain table values mean ``Bad(value)``).
Tables ``{label: value}`` of bad values of each class:
    ``wrong_kinds()``, ``bad_reals(dtype)``, ``bad_ints(valid)``, ``numpy_ints(n)``,
    ``bad_bools()``, ``bad_rngs()``, ``bad_arrays(x)``; ``drop(table, *labels)`` removes
    entries.
Arrays: ``with_value(x, v)``, ``other_library(x)``, ``other_device(x)``,
``assert_like(out, ref, place=None)``. Budget: ``time_budget(seconds)``, ``BudgetExceeded``.

The array helpers take any array (numpy, torch, array_api_strict, ...) and find its library
with ``backends.backend_of``, so they serve the ``backend`` fixture and torch front ends alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

import backends

__all__ = [
    "BUDGET_S",
    "HUGE",
    "Bad",
    "BudgetExceeded",
    "accept",
    "assert_like",
    "bad_arrays",
    "bad_bools",
    "bad_ints",
    "bad_reals",
    "bad_rngs",
    "check_outcome",
    "drop",
    "numpy_ints",
    "other_device",
    "other_library",
    "reject",
    "sweep",
    "time_budget",
    "with_value",
    "wrong_kinds",
]

#: seconds one call may take before the sweep calls it a hang (keep sizes small)
BUDGET_S = 10.0

#: a "huge" number for each float dtype: beyond the dtype's largest value (1e39 for float32,
#: 1e5 for float16), or float64's largest power of ten
HUGE = {"float16": 1e5, "bfloat16": 1e39, "float32": 1e39, "float64": 1e308}


# -- expectations ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Bad:
    """A table value with what the rule expects of it.

    ``outcome``: ``"either"`` (return a good result or raise TypeError/ValueError naming the
    argument), ``"raise"`` (must raise) or ``"accept"`` (must return a good result).
    ``finite=False``: a returned result may hold NaN/inf (say why in ``note``: a documented
    library's behaviour kept on purpose)."""

    value: Any
    outcome: str = "either"
    finite: bool = True
    note: str = ""


def accept(value: Any, note: str = "") -> Bad:
    """``value`` must be accepted (numpy integers where ints are expected, ...)."""
    return Bad(value, outcome="accept", note=note)


def reject(value: Any, note: str = "") -> Bad:
    """``value`` must raise TypeError/ValueError naming the argument."""
    return Bad(value, outcome="raise", note=note)


# -- tables of bad values --------------------------------------------------------------------
def wrong_kinds() -> dict[str, Any]:
    """Values of the wrong kind for any argument: str, list, dict, None, a plain object."""
    return {"str": "1", "list": [1.0], "dict": {}, "None": None, "object": object()}


def bad_reals(dtype: str = "float32") -> dict[str, Any]:
    """Bad values for a real-number argument: wrong kinds, bool, NaN, +-inf, negative, zero,
    huge for ``dtype`` (``HUGE``); a numpy float must be accepted wherever 1.0 is."""
    return {
        **wrong_kinds(),
        "bool": True,
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "negative": -1.0,
        "zero": 0.0,
        "huge": HUGE[dtype],
        "np.float64": accept(np.float64(1.0)),
    }


def numpy_ints(n: int) -> dict[str, Bad]:
    """``n`` as numpy integer scalars: they must be accepted wherever ``n`` is."""
    return {"np.int64": accept(np.int64(n)), "np.int32": accept(np.int32(n))}


def bad_ints(valid: int = 2) -> dict[str, Any]:
    """Bad values for an int argument whose valid value is ``valid``: wrong kinds, bool, a
    float ``float(valid)`` (``check_int`` refuses it rather than truncate; wrap it in
    :func:`reject` to insist), NaN, inf, negative, zero; plus ``numpy_ints(valid)``, which
    must be accepted."""
    return {
        **wrong_kinds(),
        "bool": True,
        "float": float(valid),
        "nan": math.nan,
        "inf": math.inf,
        "negative": -1,
        "zero": 0,
        **numpy_ints(valid),
    }


def bad_bools() -> dict[str, Any]:
    """Bad values for a True/False argument: wrong kinds, ints, a numpy bool."""
    return {**wrong_kinds(), "int": 1, "zero": 0, "np.bool_": np.bool_(True)}


def bad_rngs() -> dict[str, Any]:
    """Bad values for an ``rng=`` argument (None, an int seed, a native generator or a
    ``backends.Rng``): wrong kinds (None excepted: it is valid), bool, a float, NaN, a
    negative seed and one past 64 bits; numpy integer seeds must be accepted."""
    kinds = drop(wrong_kinds(), "None")
    return {
        **kinds,
        "bool": True,
        "float": 1.0,
        "nan": math.nan,
        "negative": -1,
        "huge": 2**64,
        **numpy_ints(7),
    }


def drop(table: Mapping[str, Any], *labels: str) -> dict[str, Any]:
    """``table`` without the entries ``labels`` (say why at the call)."""
    missing = set(labels) - set(table)
    assert not missing, f"drop: no entries {sorted(missing)} in the table"
    return {k: v for k, v in table.items() if k not in labels}


# -- arrays ----------------------------------------------------------------------------------
def _host(x: Any) -> np.ndarray:
    """A float64 (complex128, bool, int64) numpy copy of any array (bfloat16 via float32)."""
    adapter = backends.backend_of(x)
    if adapter.dtype_name(x.dtype) == "bfloat16":
        x = adapter.xp.astype(x, adapter.xp.float32)
    return adapter.to_numpy(x)


def _place(x: Any) -> tuple[Any, Any, Any]:
    """``(adapter, xp, device)`` of an array."""
    xp, device = backends.namespace_and_device(x)
    return backends.backend_of(xp), xp, device


def with_value(x: Any, value: float, index: int = 0) -> Any:
    """A copy of ``x`` (same library, device, dtype) with its ``index``-th entry (flat order)
    set to ``value`` (an empty ``x`` is copied unchanged)."""
    adapter, xp, device = _place(x)
    host = _host(x).astype(np.float64)
    if host.size:
        host.flat[index] = value
    with np.errstate(over="ignore", invalid="ignore"):
        return adapter.asarray(host, dtype=x.dtype, device=device)


def other_library(x: Any) -> Any | None:
    """``x``'s values as an array of another library (numpy, or torch for a numpy ``x``);
    None when none is installed."""
    adapter, _, _ = _place(x)
    name = adapter.dtype_name(x.dtype)
    host = _host(x).astype("float32" if name == "bfloat16" else name)
    if adapter.name != "numpy":
        return host
    for other in ("torch", "array_api_strict"):
        candidate = backends.registry.ADAPTERS[other]
        if candidate.is_available():
            return candidate.asarray(host)
    return None


def other_device(x: Any) -> Any | None:
    """``x`` copied to another device of its library (array_api_strict's ``CPU_DEVICE`` for
    ``device1``, torch's CPU for CUDA and CUDA for CPU); None when the library has one."""
    adapter, _, device = _place(x)
    for candidate in adapter.devices():
        if candidate != device:
            return adapter.asarray(_host(x), dtype=x.dtype, device=candidate)
    return None


def bad_arrays(x: Any) -> dict[str, Any]:
    """Bad values for the array argument whose valid value is the floating array ``x``:
    non-arrays (None, str, a nested list), a 0-d and an empty array, int, bool, complex,
    float16 and bfloat16 arrays (where the library has them), NaN, +-inf and the dtype's
    largest value in one entry, an array of another library and one on another device
    (where there is one). Each keeps ``x``'s library and device unless its label says."""
    adapter, xp, device = _place(x)
    host = _host(x)
    table: dict[str, Any] = {
        "None": None,
        "str": "x",
        "list": host.tolist(),
        "0-d": adapter.asarray(1.0, dtype=x.dtype, device=device),
        "empty": xp.zeros((0, *x.shape[1:]) if x.ndim else (0,), dtype=x.dtype, device=device),
        "int": adapter.asarray(np.round(host).astype(np.int64), device=device),
        "bool": adapter.asarray(host != 0, device=device),
        "complex": adapter.asarray(host.astype(np.complex128), device=device),
    }
    for name in ("float16", "bfloat16"):
        if getattr(xp, name, None) is not None and x.dtype != getattr(xp, name):
            table[name] = xp.astype(x, getattr(xp, name))
    top = float(xp.finfo(x.dtype).max)
    for label, value in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)):
        table[label] = with_value(x, value)
    table["huge"] = with_value(x, top)
    for label, make in (("other-library", other_library), ("other-device", other_device)):
        value = make(x)
        if value is not None:
            table[label] = value
    return table


def _is_array(a: Any) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "ndim")


def _all_finite(a: Any) -> bool:
    xp, _ = backends.namespace_and_device(a)
    if not xp.isdtype(a.dtype, ("real floating", "complex floating")):
        return True
    return bool(xp.all(xp.isfinite(a)))


def assert_like(
    out: Any, ref: Any, *, finite: bool = True, where: str = "result", place: Any = None
) -> None:
    """``out`` has the structure of ``ref`` (tuples, lists, dicts and dataclasses walked
    field by field): each array of ``ref`` is matched by an array of the same library on the
    same device (or of ``place = (xp, device)`` when given: the call's only array argument
    was replaced by one of another library or device), finite wherever ``ref``'s was (with
    ``finite``); each number by a number."""
    if _is_array(ref) and not isinstance(ref, np.generic):
        assert _is_array(out), f"{where} is a {type(out).__name__}, expected an array"
        ref_xp, ref_dev = place or backends.namespace_and_device(ref)
        out_xp, out_dev = backends.namespace_and_device(out)
        assert out_xp is ref_xp, f"{where} is an array of {out_xp.__name__}, not {ref_xp.__name__}"
        assert out_dev == ref_dev, f"{where} is on the device {out_dev!r}, not {ref_dev!r}"
        if finite and _all_finite(ref):
            assert _all_finite(out), f"{where} holds NaN or inf (the valid call's did not)"
    elif isinstance(ref, tuple | list):
        size = len(out) if isinstance(out, tuple | list) else "-"
        assert isinstance(out, type(ref)) and size == len(ref), (
            f"{where} is a {type(out).__name__} of length {size}, expected a "
            f"{type(ref).__name__} of length {len(ref)}"
        )
        for i, (o, r) in enumerate(zip(out, ref, strict=True)):
            assert_like(o, r, finite=finite, where=f"{where}[{i}]", place=place)
    elif isinstance(ref, Mapping):
        assert isinstance(out, Mapping) and set(out) == set(ref), f"{where}: keys differ"
        for k in ref:
            assert_like(out[k], ref[k], finite=finite, where=f"{where}[{k!r}]", place=place)
    elif dataclasses.is_dataclass(ref) and not isinstance(ref, type):
        assert type(out) is type(ref), (
            f"{where} is a {type(out).__name__}, not {type(ref).__name__}"
        )
        for f in dataclasses.fields(ref):
            assert_like(
                getattr(out, f.name),
                getattr(ref, f.name),
                finite=finite,
                where=f"{where}.{f.name}",
                place=place,
            )
    elif isinstance(ref, int | float | np.number) and not isinstance(ref, bool):
        assert isinstance(out, int | float | np.number) or (_is_array(out) and out.ndim == 0), (
            f"{where} is a {type(out).__name__}, expected a number"
        )
        if finite and math.isfinite(float(ref)):
            assert math.isfinite(float(out)), f"{where} = {out!r} is not finite"


# -- time budget -----------------------------------------------------------------------------
class BudgetExceeded(Exception):
    """A call ran past its time budget (the sweep reports it as a hang)."""


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` in the block once it has run ``seconds`` (SIGALRM, main
    thread only; elsewhere the elapsed time is checked at the end)."""
    start = time.perf_counter()
    use_alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if use_alarm:

        def _ring(signum: int, frame: Any) -> None:
            raise BudgetExceeded(f"still running after {seconds:g} s")

        previous = signal.signal(signal.SIGALRM, _ring)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    if elapsed > seconds:
        raise BudgetExceeded(f"took {elapsed:.1f} s, over the budget of {seconds:g} s")


# -- the rule --------------------------------------------------------------------------------
def _names_any(message: str, names: Iterable[str]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in names)


def check_outcome(
    call: Callable[[], Any],
    *,
    names: str | Iterable[str],
    ref: Any = None,
    check: Callable[[Any], None] | None = None,
    outcome: str = "either",
    finite: bool = True,
    budget_s: float = BUDGET_S,
    place: Any = None,
) -> Any:
    """Run ``call()`` and assert the rule: a TypeError/ValueError whose message names one of
    ``names`` (returned), or a result that passes ``assert_like(result, ref, place=place)``
    (when ``ref`` is given) and ``check(result)`` (returned). ``outcome``: ``"either"``,
    ``"raise"``, ``"accept"`` (see :class:`Bad`). AssertionError otherwise."""
    assert outcome in ("either", "raise", "accept"), f"outcome {outcome!r}"
    names = (names,) if isinstance(names, str) else tuple(names)
    try:
        with time_budget(budget_s):
            out = call()
    except BudgetExceeded as exc:
        raise AssertionError(f"hang: {exc}") from None
    except (TypeError, ValueError) as exc:
        text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        if outcome == "accept":
            raise AssertionError(f"must be accepted, raised {text}") from exc
        if not _names_any(str(exc), names):
            raise AssertionError(f"the message does not name {' or '.join(names)}: {text}") from exc
        return exc
    except Exception as exc:
        raise AssertionError(
            f"raised {type(exc).__module__}.{type(exc).__name__}: {exc} (only TypeError or "
            "ValueError naming the argument are allowed)"
        ) from exc
    if outcome == "raise":
        raise AssertionError(f"must raise TypeError/ValueError, returned {_short(out)}")
    if ref is not None:
        assert_like(out, ref, finite=finite, place=place)
    if check is not None:
        check(out)
    return out


def _short(obj: Any) -> str:
    if _is_array(obj):
        return f"an array of shape {tuple(obj.shape)} and dtype {obj.dtype}"
    text = repr(obj)
    return text if len(text) < 80 else text[:77] + "..."


def _snapshot(value: Any) -> Any:
    """Host copies of the arrays in ``value`` (walking tuples, lists and dicts)."""
    if _is_array(value) and not isinstance(value, np.generic):
        try:
            return _host(value)
        except TypeError:  # not an array of a known library
            return None
    if isinstance(value, tuple | list):
        return [_snapshot(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _snapshot(v) for k, v in value.items()}
    return None


def _unchanged(before: Any, after: Any) -> bool:
    if type(before) is not type(after):
        return False
    if isinstance(before, np.ndarray):
        nan_ok = before.dtype.kind in "fc"
        return before.shape == after.shape and np.array_equal(before, after, equal_nan=nan_ok)
    if isinstance(before, list):
        return len(before) == len(after) and all(map(_unchanged, before, after))
    if isinstance(before, dict):
        return before.keys() == after.keys() and all(
            _unchanged(before[k], after[k]) for k in before
        )
    return True


def _arrays_in(value: Any) -> list:
    if _is_array(value) and not isinstance(value, np.generic):
        return [value]
    if isinstance(value, tuple | list):
        return [a for v in value for a in _arrays_in(v)]
    if isinstance(value, Mapping):
        return [a for v in value.values() for a in _arrays_in(v)]
    return []


def _sole_array_place(kwargs: Mapping[str, Any], arg: str) -> Any:
    """``(xp, device)`` of ``kwargs[arg]`` when it holds the call's only arrays (the result
    then follows it), else None."""
    mine = _arrays_in(kwargs[arg])
    others = [a for k, v in kwargs.items() if k != arg for a in _arrays_in(v)]
    if not mine or others:
        return None
    try:
        return backends.namespace_and_device(*mine)
    except (TypeError, ValueError):
        return None


def sweep(
    fn: Callable[..., Any],
    valid: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    table: Mapping[str, Mapping[str, Any]],
    *,
    names: Mapping[str, str | Iterable[str]] | None = None,
    check: Callable[[Any], None] | None = None,
    expect: Callable[[Any, Mapping[str, Any]], None] | None = None,
    budget_s: float = BUDGET_S,
) -> Any:
    """Assert the rule for ``fn`` and every mutation of its valid keyword arguments.

    ``valid``: the kwargs of a call that must succeed (or a callable making fresh ones for
    each case, when ``fn`` changes them). ``table[arg][label]``: a bad value (or a
    :class:`Bad`) for ``arg``. ``names[arg]``: what the message may name instead of ``arg``
    (default ``arg``). ``check(result)``: extra assertions on every returned result (the
    valid one too); ``expect(result, kwargs)``: the same, given the call's arguments (e.g.
    the result has the shape of ``kwargs["x"]``). Input arrays must be left unchanged.
    Returns the valid call's result; fails once, listing every case that broke the rule."""
    make = valid if callable(valid) else (lambda: dict(valid))
    kwargs = make()
    ref = check_outcome(lambda: fn(**kwargs), names=(), check=check, outcome="accept")
    if expect is not None:
        expect(ref, kwargs)
    failures = []
    for arg, cases in table.items():
        assert arg in kwargs, f"sweep: {arg!r} is not an argument of the valid call"
        accepted = (names or {}).get(arg, arg)
        for label, value in cases.items():
            bad = value if isinstance(value, Bad) else Bad(value)
            kwargs = {**make(), arg: bad.value}
            before = _snapshot(kwargs)
            try:
                out = check_outcome(
                    lambda kw=kwargs: fn(**kw),
                    names=accepted,
                    ref=ref,
                    check=check,
                    outcome=bad.outcome,
                    finite=bad.finite,
                    budget_s=budget_s,
                    place=_sole_array_place(kwargs, arg),
                )
                if expect is not None and not isinstance(out, TypeError | ValueError):
                    expect(out, kwargs)
                assert _unchanged(before, _snapshot(kwargs)), "an input array was modified"
            except AssertionError as exc:
                failures.append(f"  {arg}={label}: {exc}")
    name = getattr(fn, "__qualname__", repr(fn))
    assert not failures, f"{name}: {len(failures)} case(s) broke the rule\n" + "\n".join(failures)
    return ref
