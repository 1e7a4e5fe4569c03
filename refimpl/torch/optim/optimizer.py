r"""``ParamTransformingOptimizer`` and ``ChainedParamTransformingOptimizer`` (rai_toolbox's
``optim.optimizer``), with the checks every torch front end of ``refimpl.optim`` shares.

A parameter-transforming optimizer wraps an ordinary torch optimizer ``InnerOpt`` (SGD by
default) and transforms each parameter in place around its step::

    _pre_step_transform_(P)     # on P.grad: e.g. sign, normalisation, top-q, the LMO
    InnerOpt.step()             # the update itself (SGD, Adam, FrankWolfe, ...)
    _post_step_transform_(P)    # on P: e.g. the projection back into a ball

``P`` is the batch view of a parameter selected by ``param_ndim`` (``refimpl.batching``): a
view of shape ``(N, d0, ...)`` whose ``.grad`` is the same view of the parameter's gradient,
so a transform written once for a batch of rows applies per row. ``grad_scale`` and
``grad_bias`` are applied to the gradient after the pre-step transform. The two optimizers
share ``param_groups``, ``defaults`` and ``state`` (the very same objects), so learning-rate
schedulers, ``add_param_group`` and ``state_dict`` work on either.

Subclasses written for rai_toolbox run unchanged: they override the hooks
``_pre_step_transform_(param, optim_group)`` / ``_post_step_transform_(param, optim_group)``
and modify ``param.grad`` / ``param`` in place. The built-in classes implement the hooks
with the array-API functions of ``refimpl.optim``.

Checks (docs/design.md, Bad input; each a fix over the documented library, listed in
docs/differences.md):
parameter groups are materialised once (a generator inside a group dict is never consumed
twice), and every option is validated on every entry (construction, ``add_param_group``,
``load_state_dict``) and again at ``step`` for values edited in place; a state dict saved by
another optimizer class is refused; sparse gradients and non-tensor parameters raise a
TypeError before anything changes.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.optim import SGD, Optimizer

from refimpl.batching import batch_shape, row_ndim
from refimpl.torch.checks import check_scalar_fits, check_values
from refimpl.validation import check_callable, check_param_ndim, check_real

__all__ = ["ChainedParamTransformingOptimizer", "ParamTransformingOptimizer"]


# -- parameters and groups -------------------------------------------------------------------
def tensor_list(params: Any, *, name: str = "params") -> list[torch.Tensor]:
    """A tensor or an iterable of tensors (a generator is consumed here, once) as a list."""
    if isinstance(params, torch.Tensor):
        return [params]
    if isinstance(params, set | frozenset | str | bytes | Mapping) or params is None:
        raise TypeError(
            f"{name} must be a tensor or an ordered iterable of tensors, got "
            f"{type(params).__name__}"
        )
    try:
        items = list(params)
    except TypeError:
        raise TypeError(
            f"{name} must be a tensor or an iterable of tensors, got {type(params).__name__}"
        ) from None
    for i, p in enumerate(items):
        if not isinstance(p, torch.Tensor):
            raise TypeError(
                f"{name} must contain torch.Tensors, got {type(p).__module__}."
                f"{type(p).__qualname__} at position {i} (convert arrays with torch.as_tensor)"
            )
    return items


def group_dict(group: Any) -> dict[str, Any]:
    """A parameter-group dict whose ``"params"`` is now a list of tensors (in place, as torch's
    ``add_param_group`` does, but before anything else reads it)."""
    if not isinstance(group, dict):
        raise TypeError(f"a parameter group must be a dict, got {type(group).__name__}")
    if "params" not in group:
        raise ValueError(
            f"a parameter group needs a 'params' entry (the tensors), got keys {sorted(group)}"
        )
    group["params"] = tensor_list(group["params"])
    return group


def param_groups(params: Any) -> list[dict[str, Any]]:
    """``params`` (tensors, or parameter-group dicts) as a list of group dicts."""
    if isinstance(params, torch.Tensor) or params is None:
        raise TypeError(
            "params must be an iterable of tensors or of parameter-group dicts, got "
            f"{type(params).__name__}"
        )
    try:
        items = list(params)
    except TypeError:
        raise TypeError(
            f"params must be an iterable of tensors or of dicts, got {type(params).__name__}"
        ) from None
    if not items:
        raise ValueError("params is empty: give at least one tensor")
    if all(isinstance(g, dict) for g in items):
        return [group_dict(g) for g in items]
    if any(isinstance(g, dict) for g in items):
        raise TypeError("params must be tensors or parameter-group dicts, not a mix of both")
    return [{"params": tensor_list(items)}]


def group_defaults(defaults: Any) -> dict[str, Any]:
    """A copy of the ``defaults=`` argument (None: no defaults): the documented library
    writes into the caller's dict; anything but a mapping is a TypeError naming it."""
    if defaults is None:
        return {}
    if not isinstance(defaults, Mapping):
        raise TypeError(
            f"defaults must be a dict of parameter-group options or None, got {defaults!r} "
            f"({type(defaults).__name__})"
        )
    return dict(defaults)


def check_lr(group: Mapping[str, Any]) -> None:
    """A group's ``lr`` (when it has one): a finite number >= 0 (torch's optimizers accept NaN)."""
    if "lr" not in group:
        return
    lr = group["lr"]
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise ValueError(f"lr must be a number or a one-element tensor, got shape {lr.shape}")
        lr = float(lr)
    check_real("lr", lr, low=0.0)


# -- the shared checks -----------------------------------------------------------------------
#: option types whose value cannot change without the group's entry being reassigned
_IMMUTABLE = frozenset({bool, int, float, complex, str, bytes, type(None)})

Snapshot = tuple[tuple[str, ...], tuple[Any, ...], tuple[tuple[Any, ...], ...]]


def snapshot(group: Mapping[str, Any]) -> Snapshot | None:
    """What the validation of a group depends on, taken when it passed: its keys, its entries
    (the objects themselves) and each parameter's dtype, device and shape; None when an option
    is mutable (a tensor ``lr`` can change in place), so that the group is validated at every
    step. :func:`unchanged` then tells, by identity, whether anything was reassigned."""
    params = group["params"]
    if type(params) is not list or not all(isinstance(p, torch.Tensor) for p in params):
        return None
    if not all(_immutable(v) for k, v in group.items() if k != "params"):
        return None
    meta = tuple((p, p.dtype, p.device, p.shape) for p in params)
    return tuple(group), tuple(group.values()), meta


def unchanged(snap: Snapshot | None, group: Mapping[str, Any]) -> bool:
    """Whether ``group`` still holds the very objects of ``snap`` under the same keys (and its
    parameters their dtypes, devices and shapes): then it passes the validation that ``snap``
    recorded."""
    if snap is None:
        return False
    keys, values, meta = snap
    if len(group) != len(keys) or not all(map(operator.is_, group.values(), values)):
        return False
    if tuple(group) != keys:
        return False
    params = group["params"]
    return len(params) == len(meta) and all(
        p is q and p.dtype is dtype and p.shape == shape and p.device == device
        for p, (q, dtype, device, shape) in zip(params, meta)
    )


def _immutable(value: Any) -> bool:
    kind = type(value)
    return kind in _IMMUTABLE or (kind is tuple and all(_immutable(v) for v in value))


class CheckedOptimizer(Optimizer):
    """Validation shared by every front end (module docstring). Subclasses extend
    ``_validate_entries(group)`` (how a group is checked), ``_validate_options(group)`` (their
    own keys), ``_applied_scalars()`` (the options that multiply or shift the tensors) and
    ``_validate_state(state)``."""

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        """Every check of one parameter group: its entries, then that the numbers applied to
        its tensors are finite in their dtypes (1e39 overflows float32 into inf)."""
        self._validate_entries(group)
        dtypes = [p.dtype for p in group["params"]]
        for name in sorted(self._applied_scalars()):
            if group.get(name) is not None:
                check_scalar_fits(name, group[name], dtypes)

    def _validate_entries(self, group: Mapping[str, Any]) -> None:
        """The parameters (real floating tensors holding values) and the options."""
        for i, p in enumerate(tensor_list(group["params"])):
            if not torch.is_floating_point(p):
                raise TypeError(f"params[{i}] must have a real floating dtype, got {p.dtype}")
            check_values(p, f"params[{i}]")
        check_lr(group)
        self._validate_options(group)

    def _applied_scalars(self) -> set[str]:
        """The group options applied as scalars to the parameters or their gradients (each
        must be finite in the parameters' dtypes). Subclasses add theirs."""
        return set()

    def _validate_options(self, group: Mapping[str, Any]) -> None:
        """Check the options this class reads from a group (subclasses call super)."""

    def _validate_state(self, state: Mapping[str, Any]) -> None:
        """Check one parameter's saved state (subclasses call super)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (a dict with ``"params"``); its options are validated first."""
        group = group_dict(param_group)
        self._validate_group({**self.defaults, **group})
        self._add_group(group)

    def _add_group(self, group: dict[str, Any]) -> None:
        Optimizer.add_param_group(self, group)

    def _check_step(self) -> None:
        """Every group's options (they may have been edited in place) and no sparse gradient;
        raises before any parameter changes. A group is validated again only when it is not
        :func:`unchanged` since its last successful validation."""
        checked = self.__dict__.setdefault("_checked", [])
        del checked[len(self.param_groups) :]
        for g, group in enumerate(self.param_groups):
            if g >= len(checked) or not unchanged(checked[g], group):
                self._validate_group(group)
                checked[g : g + 1] = [snapshot(group)]
            for p in group["params"]:
                if p.grad is not None and p.grad.layout != torch.strided:
                    raise TypeError(
                        f"{type(self).__name__} does not support sparse gradients (a parameter "
                        f"of shape {tuple(p.shape)} in group {g} has a {p.grad.layout} one); "
                        "use dense gradients, e.g. nn.Embedding(..., sparse=False)"
                    )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class (ValueError for another class's, or bad values).

        One saved by rai_toolbox's class of the same name loads too: the options it does not
        keep per group (``_rai_missing``) are taken from the current groups."""
        self._load(self._checked_state_dict(state_dict))

    def _load(self, state_dict: dict[str, Any]) -> None:
        Optimizer.load_state_dict(self, state_dict)

    #: options kept per group here but not by rai_toolbox 0.2.1 (filled in when loading its
    #: state dicts)
    _rai_missing: tuple[str, ...] = ()
    #: options rai_toolbox 0.2.1 keeps per group under another name: {rai's name: ours}
    _rai_renamed: Mapping[str, str] = {}

    def _rai_options(self) -> set[str]:
        """The options a rai_toolbox checkpoint of this class lacks."""
        return set(self._rai_missing) | set(self._rai_renamed.values())

    def _rai_names(self) -> set[str]:
        """The options a rai_toolbox checkpoint of this class holds in their place."""
        return set(self._rai_renamed)

    def _is_rai_group(self, saved: Mapping[str, Any], missing: set[str]) -> bool:
        """Whether a saved group lacking the options ``missing`` is one of rai_toolbox's
        checkpoints of this class: it lacks exactly the options rai does not keep per group
        and holds those rai keeps under another name. (A group of another class rarely fits;
        the one that does holds the same kind of state.)"""
        return missing == self._rai_options() and self._rai_names() <= set(saved)

    def _from_rai(self, saved: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        """A saved rai group, renamed and completed with this class's per-group options."""
        saved = {self._rai_renamed.get(k, k): v for k, v in saved.items()}
        return {**{k: current[k] for k in self._rai_options() if k not in saved}, **saved}

    def _checked_state_dict(self, state_dict: Any) -> dict[str, Any]:
        """``state_dict``, checked: refuse one saved by another optimizer class (its groups
        lack options this one reads, and are no rai_toolbox checkpoint of this class:
        :meth:`_is_rai_group`), one whose layout is damaged, or one holding invalid values.
        Never modified in place."""
        saved, states = _state_dict_parts(state_dict, self.param_groups)
        groups = []
        for i, (current, old) in enumerate(zip(self.param_groups, saved)):
            missing = set(current) - set(old) - {"params"}
            if missing and self._is_rai_group(old, missing):
                old = self._from_rai(dict(old), current)
                missing = set()
            if missing:
                raise ValueError(
                    f"state_dict was not saved by a {type(self).__name__}: its parameter "
                    f"group {i} lacks the option(s) {sorted(missing)}"
                )
            self._validate_group({**old, "params": current["params"]})
            groups.append(old)
        for key, st in states.items():
            try:
                self._validate_state(st)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"state_dict['state'][{key!r}]: {exc}") from None
        return {**state_dict, "param_groups": groups}


def _state_dict_parts(state_dict: Any, current: list[dict[str, Any]]) -> tuple[list, Mapping]:
    """``(param_groups, state)`` of a state dict, after the checks of its layout (what
    ``state_dict()`` returns: a dict with a list of group dicts, each holding as many
    parameter ids as the current group has parameters, and a dict of per-parameter state
    dicts); TypeError or ValueError naming the damaged entry."""
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
        raise TypeError(
            "state_dict must be a dict with 'state' and 'param_groups' (from state_dict()), "
            f"got {type(state_dict).__name__}"
        )
    saved, states = state_dict["param_groups"], state_dict["state"]
    if not isinstance(saved, list | tuple) or not all(isinstance(g, Mapping) for g in saved):
        raise TypeError(
            f"state_dict['param_groups'] must be a list of parameter-group dicts, got {saved!r:.80}"
        )
    if len(saved) != len(current):
        raise ValueError(
            f"state_dict has {len(saved)} parameter group(s), this optimizer has {len(current)}"
        )
    for i, (group, old) in enumerate(zip(current, saved)):
        ids = old.get("params")
        if not isinstance(ids, list | tuple) or len(ids) != len(group["params"]):
            raise ValueError(
                f"state_dict['param_groups'][{i}]['params'] must list the ids of the "
                f"{len(group['params'])} parameter(s) of group {i}, got {ids!r:.80}"
            )
    if not isinstance(states, Mapping) or not all(isinstance(v, Mapping) for v in states.values()):
        raise TypeError(
            f"state_dict['state'] must be a dict of per-parameter state dicts, got {states!r:.80}"
        )
    return list(saved), states


# -- batch views -----------------------------------------------------------------------------
def _view(t: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
    """``(t viewed as shape, False)``, or a reshaped copy and True when no view exists."""
    try:
        return t.view(shape), False
    except RuntimeError:  # e.g. a transposed tensor: work on a copy, write it back after
        return t.reshape(shape).clone(), True


@contextlib.contextmanager
def batch_view(p: torch.Tensor, param_ndim: int | None) -> Iterator[torch.Tensor]:
    """``p`` as its ``(N, d0, ...)`` batch view, with ``.grad`` the same view of ``p.grad``
    (rai_toolbox's ``to_batch``). In-place changes reach ``p`` (and ``p.grad``); a parameter
    that cannot be viewed (non-contiguous) is transformed on a copy that is written back."""
    view, write_back = open_batch_view(p, param_ndim)
    yield view
    if write_back is not None:
        write_back()


def open_batch_view(
    p: torch.Tensor, param_ndim: int | None
) -> tuple[torch.Tensor, Callable[[], None] | None]:
    """:func:`batch_view` without the context manager (the optimizers' inner loop): the view
    and, when it is a copy, the function that writes it back (else None)."""
    shape = batch_shape(tuple(p.shape), param_ndim)
    view, copied = _view(p.detach(), shape)
    grad, grad_copied = None, False
    if p.grad is not None:
        grad, grad_copied = _view(p.grad, shape)
        view.grad = grad
    if not (copied or grad_copied):
        return view, None

    def write_back() -> None:
        if copied:
            p.detach().copy_(view.reshape(p.shape))
        if grad_copied and view.grad is grad:
            p.grad.copy_(grad.reshape(p.grad.shape))

    return view, write_back


def _same_memory(a: torch.Tensor | None, b: torch.Tensor) -> bool:
    return a is not None and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# -- ParamTransformingOptimizer ----------------------------------------------------------------
def _inner_kind(inner: Any) -> str:
    """ "class" for an Optimizer subclass or a partial of one, "instance" for an Optimizer."""
    if isinstance(inner, Optimizer):
        return "instance"
    target = inner
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, type) and issubclass(target, Optimizer):
        return "class"
    raise TypeError(
        "InnerOpt must be a torch.optim.Optimizer class, a functools.partial of one, or an "
        f"Optimizer instance; got {inner!r} ({type(inner).__name__})"
    )


class ParamTransformingOptimizer(CheckedOptimizer):
    r"""An optimizer that transforms each parameter in place before and after the step of an
    inner optimizer (module docstring).

    ``ParamTransformingOptimizer(params=None, InnerOpt=SGD, *, param_ndim=-1, grad_scale=1.0,
    grad_bias=0.0, defaults=None, **inner_opt_kwargs)``, as in rai_toolbox 0.2.1:

    * ``params``: tensors or parameter-group dicts; ignored-but-checked when ``InnerOpt`` is an
      optimizer instance (its parameters are used; different ones raise ValueError).
    * ``InnerOpt``: an Optimizer class or a ``functools.partial`` of one (built with
      ``inner_opt_kwargs``), or an instance.
    * ``param_ndim``: how parameters are viewed as rows (``refimpl.batching``; validated for
      every parameter, also of groups added later).
    * ``grad_scale``, ``grad_bias``: applied to the gradient after the pre-step transform.
    * ``defaults``: group defaults (a group's own key wins, then ``defaults``, then the
      keywords).

    The default transforms are no-ops: this class alone is ``InnerOpt`` with its checks.
    """

    def __init__(
        self,
        params: Any = None,
        InnerOpt: Any = SGD,
        *,
        param_ndim: int | None = -1,
        grad_scale: float = 1.0,
        grad_bias: float = 0.0,
        defaults: dict[str, Any] | None = None,
        **inner_opt_kwargs: Any,
    ) -> None:
        self._ready = False
        defaults = group_defaults(defaults)
        defaults.setdefault("param_ndim", param_ndim)
        defaults.setdefault("grad_scale", grad_scale)
        defaults.setdefault("grad_bias", grad_bias)
        if _inner_kind(InnerOpt) == "class":
            Optimizer.__init__(self, param_groups(params), defaults)
            self.inner_opt = _build_inner(InnerOpt, self.param_groups, inner_opt_kwargs)
        else:
            if inner_opt_kwargs:
                raise TypeError(
                    f"InnerOpt is an optimizer instance, so the keyword arguments "
                    f"{sorted(inner_opt_kwargs)} for building one have no effect"
                )
            if params is not None:
                _check_same_params(params, InnerOpt)
            self.inner_opt = InnerOpt
            Optimizer.__init__(self, InnerOpt.param_groups, defaults)
        self._share()
        self._ready = True
        for group in self.param_groups:  # now with the inner optimizer's options (lr, ...)
            self._validate_group(group)

    def _share(self) -> None:
        """Mirror the inner optimizer: the same ``defaults``, ``param_groups`` and ``state``."""
        inner = self.inner_opt
        inner.defaults.update(self.defaults)
        self.defaults = inner.defaults
        self.param_groups = inner.param_groups
        self.state = inner.state

    def _add_group(self, group: dict[str, Any]) -> None:
        if not self._ready:  # during construction: the groups of this optimizer itself
            Optimizer.add_param_group(self, group)
            return
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.inner_opt.add_param_group(group)

    def _validate_entries(self, group: Mapping[str, Any]) -> None:
        super()._validate_entries(group)  # the parameters are tensors, then the options
        pn = check_param_ndim(group["param_ndim"])
        for name in ("grad_scale", "grad_bias"):
            check_real(name, group[name])
        for i, p in enumerate(group["params"]):
            try:
                row_ndim(pn, p.ndim, name="param_ndim")
            except ValueError as exc:
                raise ValueError(f"{exc} (params[{i}] has shape {tuple(p.shape)})") from None
        inner = getattr(self, "inner_opt", None)
        if isinstance(inner, CheckedOptimizer) and self._ready:
            inner._validate_options(group)

    def _applied_scalars(self) -> set[str]:
        """``grad_scale``, ``grad_bias``, and the inner optimizer's: its own list, or ``lr``
        for a torch optimizer."""
        inner = getattr(self, "inner_opt", None)
        extra = inner._applied_scalars() if isinstance(inner, CheckedOptimizer) else {"lr"}
        return super()._applied_scalars() | {"grad_scale", "grad_bias"} | extra

    def _validate_state(self, state: Mapping[str, Any]) -> None:
        super()._validate_state(state)
        if isinstance(self.inner_opt, CheckedOptimizer):
            self.inner_opt._validate_state(state)

    def _rai_options(self) -> set[str]:
        inner = self.inner_opt
        extra = inner._rai_options() if isinstance(inner, CheckedOptimizer) else set()
        return super()._rai_options() | extra

    def _rai_names(self) -> set[str]:
        inner = self.inner_opt
        extra = inner._rai_names() if isinstance(inner, CheckedOptimizer) else set()
        return super()._rai_names() | extra

    def _from_rai(self, saved: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(self.inner_opt, CheckedOptimizer):
            saved = self.inner_opt._from_rai(saved, current)
        return super()._from_rai(saved, current)

    # -- the documented interface ----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return self.inner_opt.state_dict()

    def _load(self, state_dict: dict[str, Any]) -> None:
        self.inner_opt.load_state_dict(state_dict)
        self._reshare()

    def _reshare(self) -> None:
        self.param_groups = self.inner_opt.param_groups
        self.state = self.inner_opt.state

    def __repr__(self) -> str:
        inner = type(self.inner_opt)
        name = getattr(inner, "_display_name", inner.__name__)
        return super().__repr__().replace("(", f"[{name}](", 1)

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        """Transform ``param.grad`` in place (``param``: the batch view). Default: no-op."""

    def _post_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        """Transform ``param`` in place after the inner step (every parameter, also those
        without a gradient). Default: no-op."""

    @torch.no_grad()
    def _apply_pre_step_transform_(self) -> None:
        """``_pre_step_transform_`` on every parameter with a gradient, then ``grad_scale`` and
        ``grad_bias``; ValueError if a transform replaced the gradient instead of writing it."""
        for group in self.param_groups:
            scale, bias = group["grad_scale"], group["grad_bias"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                view, write_back = open_batch_view(p, group["param_ndim"])
                grad = view.grad
                self._pre_step_transform_(view, optim_group=group)
                if not _same_memory(view.grad, grad):
                    raise ValueError(
                        f"{type(self).__name__}._pre_step_transform_ did not modify the "
                        "gradient in-place (assigning param.grad replaces the tensor "
                        "instead of writing into it)"
                    )
                if scale != 1.0:
                    grad.mul_(scale)
                if bias != 0.0:
                    grad.add_(bias)
                if write_back is not None:
                    write_back()

    @torch.no_grad()
    def _apply_post_step_transform_(self) -> None:
        """``_post_step_transform_`` on every parameter (run by ``step`` after the inner
        step)."""
        for group in self.param_groups:
            for p in group["params"]:
                view, write_back = open_batch_view(p, group["param_ndim"])
                self._post_step_transform_(view, optim_group=group)
                if write_back is not None:
                    write_back()

    def project(self) -> None:
        """Deprecated alias of ``_apply_post_step_transform_`` (FutureWarning), kept because
        rai_toolbox 0.2.1 has it (it was removed in 0.3.0)."""
        warnings.warn(
            FutureWarning(
                "`project` will be removed in rai-toolbox 0.3.0, it is replaced by "
                "`_apply_post_step_transform_`"
            ),
            stacklevel=2,
        )
        self._apply_post_step_transform_()

    def _create_closure(self, closure: Callable[[], Any]) -> Callable[[], Any]:
        def new_closure() -> Any:
            with torch.enable_grad():
                loss = closure()
            self._check_step()
            self._apply_pre_step_transform_()
            return loss

        return new_closure

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Pre-step transforms, the inner step, post-step transforms. With a ``closure``, the
        pre-step transforms run after it (inside the inner optimizer's step)."""
        check_callable("closure", closure, optional=True)
        self._check_step()
        if closure is not None:
            loss = self.inner_opt.step(self._create_closure(closure))
        else:
            self._apply_pre_step_transform_()
            self.inner_opt.step()
            loss = None
        self._apply_post_step_transform_()
        return loss


def _build_inner(InnerOpt: Any, groups: list[dict[str, Any]], kwargs: dict[str, Any]) -> Any:
    """``InnerOpt(groups, **kwargs)``. ``lr`` is checked first, in this project's words; what
    a torch optimizer then refuses (``momentum=-1``: ValueError; ``momentum="a"``: a
    TypeError of a comparison; an empty tensor: a RuntimeError) is re-raised as a TypeError
    or ValueError naming ``InnerOpt`` and its keyword arguments."""
    check_lr(kwargs)
    target = InnerOpt
    while isinstance(target, functools.partial):
        target = target.func
    if issubclass(target, CheckedOptimizer):  # ours: its errors already name the option
        return InnerOpt(groups, **kwargs)
    try:
        return InnerOpt(groups, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        error = TypeError if isinstance(exc, TypeError) else ValueError
        raise error(
            f"InnerOpt {target.__name__} refused its keyword arguments "
            f"({', '.join(f'{k}={v!r:.40}' for k, v in kwargs.items())}): {exc}"
        ) from exc


def _check_same_params(params: Any, inner: Optimizer) -> None:
    groups = param_groups(params)
    given = [id(p) for g in groups for p in g["params"]]
    held = [id(p) for g in inner.param_groups for p in g["params"]]
    if given != held:
        raise ValueError(
            "params differ from the parameters of the InnerOpt instance: pass params=None "
            "(the instance's parameters are used) or the same tensors"
        )


# -- the chain ---------------------------------------------------------------------------------
def _instantiates_pto(obj: Any) -> bool:
    target = obj
    while isinstance(target, functools.partial):
        target = target.func
    return isinstance(target, type) and issubclass(target, ParamTransformingOptimizer)


class ChainedParamTransformingOptimizer(ParamTransformingOptimizer):
    """Compose parameter-transforming optimizers: with ``Opt1, ..., OptN`` the pre-step (then
    post-step) transforms run left to right, ``fN(... f2(f1(grad)))``; ``grad_scale`` and
    ``grad_bias`` are applied once, after the whole chain.

    ``ChainedParamTransformingOptimizer(*transforming_optimizers, params=None, InnerOpt=SGD,
    param_ndim=-1, grad_scale=1, grad_bias=0, defaults=None, **inner_opt_kwargs)``. Each member
    is a ParamTransformingOptimizer class or a ``functools.partial`` of one; its own options
    (e.g. ``q``) become group defaults (a group's own value wins). All members share the
    ``param_groups``, ``defaults`` and ``state`` of ``InnerOpt``.
    """

    def __init__(
        self,
        *transforming_optimizers: Any,
        params: Any = None,
        InnerOpt: Any = SGD,
        param_ndim: int | None = -1,
        grad_scale: float = 1,
        grad_bias: float = 0,
        defaults: dict[str, Any] | None = None,
        **inner_opt_kwargs: Any,
    ) -> None:
        for i, opt in enumerate(transforming_optimizers):
            if not _instantiates_pto(opt):
                raise TypeError(
                    "transforming_optimizers must be ParamTransformingOptimizer subclasses or "
                    f"partials of them; got {opt!r} at position {i}"
                )
        self._chain: list[ParamTransformingOptimizer] = []
        super().__init__(
            params,
            InnerOpt,
            param_ndim=param_ndim,
            grad_scale=grad_scale,
            grad_bias=grad_bias,
            defaults=defaults,
            **inner_opt_kwargs,
        )
        for opt in transforming_optimizers:
            member = opt(None, InnerOpt=self.inner_opt, defaults=dict(self.defaults))
            self._chain.append(member)
        for group in self.param_groups:
            self._validate_group(group)

    def _validate_entries(self, group: Mapping[str, Any]) -> None:
        super()._validate_entries(group)
        for member in self._chain:
            member._validate_options(group)

    def _applied_scalars(self) -> set[str]:
        members = (m._applied_scalars() for m in getattr(self, "_chain", ()))
        return super()._applied_scalars().union(*members)

    def _reshare(self) -> None:
        super()._reshare()
        for member in self._chain:
            member._reshare()

    def _rai_options(self) -> set[str]:
        return super()._rai_options().union(*(m._rai_options() for m in self._chain))

    def _rai_names(self) -> set[str]:
        return super()._rai_names().union(*(m._rai_names() for m in self._chain))

    def __repr__(self) -> str:
        text = super().__repr__()
        names = " ○ ".join(type(m).__name__ for m in reversed(self._chain))
        return names + text[len(type(self).__name__) :]

    def _pre_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        for member in self._chain:
            member._pre_step_transform_(param, optim_group=optim_group)

    def _post_step_transform_(self, param: torch.Tensor, optim_group: dict[str, Any]) -> None:
        for member in self._chain:
            member._post_step_transform_(param, optim_group=optim_group)
