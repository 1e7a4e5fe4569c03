"""Per-example keyword arguments repeated for a batch of perturbed rows.

The noise tunnel calls the wrapped method on ``B * k`` rows, example-major: row ``b*k + j``
is sample ``j`` of example ``b`` (captum's layout). Integrated gradients evaluates ``m``
path points step-major: row ``s*B + b`` is step ``s`` of example ``b``. Arguments that hold
one entry per example must follow the rows; everything else passes through unchanged.

The rules (captum 0.9's, with its accidents made errors or pass-throughs; see
docs/noise_tunnel.md):

* ``target``: a list must have one item per example (ValueError otherwise; captum does not
  check), each an int or a tuple of ints (TypeError naming the caller's entry), each item
  repeated (as a :class:`RowTargets`, which remembers the caller's index of every row, so
  errors raised later name ``target[b]`` as the caller gave it); an integer array of shape
  ``(B,)`` repeated; ``None``, an int, a tuple, a 0-d or 1-element array broadcast and stay
  as they are.
* ``additional_forward_args``: a non-tuple is wrapped into a 1-tuple (as captum); each
  top-level array whose axis 0 has the batch size is repeated; every other item passes
  unchanged (captum repeats *every* array of ndim >= 1, whatever its leading size).
* ``baselines`` (only when given): a scalar (a number, a numpy scalar or a 0-d array) or
  None passes; an array of the input's shape is repeated when B > 1; shape
  ``(1, *input.shape[1:])`` broadcasts; any other shape is a ValueError. With ``draw_baseline_from_distrib`` each row gets the baseline row
  ``baseline[index[row]]`` (``index`` drawn by the caller).
* ``feature_mask`` (only when given and not None): a mask with the input's number of axes
  and the batch size on axis 0 (B > 1) is repeated; any other mask (one without a batch
  axis, or with a leading 1) passes unchanged (captum repeats any mask with ``size(0) > 1``,
  which breaks masks without a batch axis).
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from typing import Any

from backends import namespace_and_device
from refimpl.attr.targets import TargetError, check_target_entry, entry_indices
from refimpl.validation import check_same_place, is_array

__all__ = ["RowTargets", "expand_kwargs", "repeat_rows", "tile_rows"]


class RowTargets(list):
    """A per-row target list expanded from the caller's per-example list; ``entries[r]`` is
    the index, in the caller's list, of row ``r``'s target (error messages name it)."""

    def __init__(self, items: list, entries: list[int]) -> None:
        super().__init__(items)
        self.entries = entries


def repeat_rows(xp: Any, a: Any, k: int) -> Any:
    """Each row of ``a`` repeated ``k`` times in place (``b, b, ..., b+1, ...``)."""
    return a if k == 1 else xp.repeat(a, k, axis=0)


def tile_rows(xp: Any, a: Any, m: int) -> Any:
    """All rows of ``a``, ``m`` times over (``0, 1, ..., B-1, 0, 1, ...``)."""
    return a if m == 1 else xp.tile(a, (m,) + (1,) * (a.ndim - 1))


def _per_example(a: Any, batch: int, ref: Any, name: str) -> bool:
    if not is_array(a):
        return False
    check_same_place(a, ref, name=name, ref_name="the inputs")
    return a.ndim >= 1 and a.shape[0] == batch


def expand_target(target: Any, batch: int, k: int, *, tile: bool = False, ref: Any) -> Any:
    """``target`` for ``batch * k`` rows (example-major, or step-major when ``tile``)."""
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return operator.index(target)  # numpy integers too (an int for every row)
    if isinstance(target, list):
        if len(target) != batch:
            raise TargetError(
                f"target is a list of {len(target)} items but the inputs have {batch} examples; "
                "give one target per example, or one int/tuple for all"
            )
        entries = entry_indices(target)
        for t, entry in zip(target, entries):
            check_target_entry(t, what=f"target[{entry}]")
        if tile:
            rows = [b for _ in range(k) for b in range(batch)]
        else:
            rows = [b for b in range(batch) for _ in range(k)]
        return RowTargets([target[r] for r in rows], [entries[r] for r in rows])
    if is_array(target):
        check_same_place(target, ref, name="target", ref_name="the inputs")
        if target.ndim == 0 or (target.ndim == 1 and target.shape[0] == 1 and batch != 1):
            return target
        if target.ndim != 1 or target.shape[0] != batch:
            raise TargetError(
                f"a target array must have shape ({batch},) (one per example) or hold one "
                f"value, got shape {tuple(target.shape)}"
            )
        xp, _ = namespace_and_device(target)
        return tile_rows(xp, target, k) if tile else repeat_rows(xp, target, k)
    return target


def expand_args(args: Any, batch: int, k: int, *, tile: bool = False, ref: Any) -> Any:
    """``additional_forward_args`` for ``batch * k`` rows."""
    if args is None:
        return None
    items = args if isinstance(args, tuple) else (args,)
    xp, _ = namespace_and_device(ref)
    out = []
    for i, a in enumerate(items):
        if _per_example(a, batch, ref, f"additional_forward_args[{i}]"):
            a = tile_rows(xp, a, k) if tile else repeat_rows(xp, a, k)
        out.append(a)
    return tuple(out)


def _baseline_tuple(baselines: Any, n_inputs: int) -> tuple[bool, tuple[Any, ...]]:
    is_tuple = isinstance(baselines, tuple)
    bs = baselines if is_tuple else (baselines,)
    if len(bs) != n_inputs:
        raise ValueError(
            f"baselines has {len(bs)} entries but there are {n_inputs} input array(s); give "
            "one baseline per input (a tuple for tuple inputs)"
        )
    return is_tuple, bs


def expand_baselines(
    baselines: Any,
    xs: tuple[Any, ...],
    k: int,
    *,
    draw: Callable[[int, int], Any] | None = None,
) -> Any:
    """``baselines`` for ``B * k`` example-major rows. ``draw(i, K)`` returns the row indices
    (``B * k`` integers in ``[0, K)``) into the ``K`` baselines of input ``i`` when baselines
    are drawn from their distribution."""
    if baselines is None:
        return None
    batch = xs[0].shape[0]
    xp, _ = namespace_and_device(*xs)
    is_tuple, bs = _baseline_tuple(baselines, len(xs))
    out = []
    for i, (b, x) in enumerate(zip(bs, xs)):
        name = f"baselines[{i}]" if is_tuple else "baselines"
        if b is None or not is_array(b) or b.ndim == 0:  # a scalar, for the method to check
            out.append(b)
            continue
        check_same_place(b, x, name=name, ref_name="the inputs")
        if draw is not None:
            if b.ndim != x.ndim or tuple(b.shape[1:]) != tuple(x.shape[1:]) or b.shape[0] < 1:
                raise ValueError(
                    f"{name} must have shape (K, *input.shape[1:]) = (K, "
                    f"{', '.join(map(str, x.shape[1:]))}) to draw baselines from it, got "
                    f"{tuple(b.shape)}"
                )
            out.append(xp.take(b, draw(i, b.shape[0]), axis=0))
        elif tuple(b.shape) == tuple(x.shape):
            out.append(repeat_rows(xp, b, k) if batch > 1 else b)
        elif b.ndim == x.ndim and b.shape[0] == 1 and tuple(b.shape[1:]) == tuple(x.shape[1:]):
            out.append(b)
        else:
            raise ValueError(
                f"{name} has shape {tuple(b.shape)}; it must be a scalar, have the input's "
                f"shape {tuple(x.shape)}, or shape (1, {', '.join(map(str, x.shape[1:]))})"
            )
    return tuple(out) if is_tuple else out[0]


def expand_feature_mask(mask: Any, xs: tuple[Any, ...], k: int) -> Any:
    if mask is None:
        return None
    batch = xs[0].shape[0]
    xp, _ = namespace_and_device(*xs)
    is_tuple = isinstance(mask, tuple)
    ms = mask if is_tuple else (mask,)
    out = []
    for i, (m, x) in enumerate(zip(ms, xs)):
        if is_array(m):
            check_same_place(
                m,
                x,
                name=f"feature_mask[{i}]" if is_tuple else "feature_mask",
                ref_name="the inputs",
            )
            if batch > 1 and m.ndim == x.ndim and m.shape[0] == batch:
                m = repeat_rows(xp, m, k)
        out.append(m)
    out += list(ms[len(out) :])
    return tuple(out) if is_tuple else out[0]


def expand_kwargs(
    kwargs: dict[str, Any],
    xs: tuple[Any, ...],
    k: int,
    *,
    draw: Callable[[int, int], Any] | None = None,
) -> dict[str, Any]:
    """A new dict: ``kwargs`` for ``B * k`` example-major rows (the caller's objects are
    never modified)."""
    batch, ref = xs[0].shape[0], xs[0]
    out = dict(kwargs)
    if "target" in out:
        out["target"] = expand_target(out["target"], batch, k, ref=ref)
    if "additional_forward_args" in out:
        out["additional_forward_args"] = expand_args(
            out["additional_forward_args"], batch, k, ref=ref
        )
    if "baselines" in out:
        out["baselines"] = expand_baselines(out["baselines"], xs, k, draw=draw)
    if out.get("feature_mask") is not None:
        out["feature_mask"] = expand_feature_mask(out["feature_mask"], xs, k)
    return out
