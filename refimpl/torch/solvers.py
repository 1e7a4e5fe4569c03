r"""The perturbation solvers of ``rai_toolbox.perturbations`` 0.2.1, with their signatures:
:func:`gradient_ascent`, :func:`random_restart` and the :class:`PerturbationModel` protocol.

``gradient_ascent`` runs, for ``steps`` iterations, ``xadv = perturbation_model(data)``,
``losses = criterion(model(xadv), target)`` (negated unless ``targeted``),
``reduction_fn(losses).backward()`` and ``optimizer.step()`` on the perturbation model's
parameters, with ``model`` frozen and in eval mode; then it evaluates once more and returns
``(xadv, losses)``, the losses in the criterion's own sign. ``use_best`` keeps, per datum,
the perturbed data with the best loss seen (before every step and after the last).
``random_restart(solver, repeats)`` runs a solver ``repeats`` times and keeps, per datum, the
best result (the largest loss, or the smallest when called with ``targeted=True``).

Switching from the documented library is a change of import::

    from refimpl.torch import AdditivePerturbation, L2ProjectedOptim, gradient_ascent

With the same perturbation model, optimizer and generator state the results are those of
rai_toolbox 0.2.1 bit for bit (the refimpl optimizers match rai's step for step), and the
documented examples print the same tensors (``tests/torch/test_perturbations.py``).

Differences (fixes): ``steps`` must be an int ``>= 0`` and ``repeats`` an int ``>= 1``
(rai runs no step for ``steps=-3`` and fails inside ``range`` on floats); ``targeted`` and
``use_best`` must be bools; ``model``, ``criterion`` and ``reduction_fn`` must be callable;
``use_best=True`` with a criterion that does not return one loss per datum raises its
ValueError before the first optimizer step (rai: after it, with the perturbation changed);
the kept best values are copies, so a perturbation model that returns its input never has
that input overwritten; and the eval mode of ``model`` is restored module by module (rai
restores it from the top module, switching submodules that were in eval mode to train).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch

from refimpl.torch.perturbations import AdditivePerturbation
from refimpl.validation import check_bool, check_callable, check_int

__all__ = ["PerturbationModel", "gradient_ascent", "random_restart"]


@runtime_checkable
class PerturbationModel(Protocol):
    """What :func:`gradient_ascent` perturbs data with: a callable taking the data and
    returning the perturbed data (same shape, never modified in place), whose
    ``parameters()`` the optimizer updates. ``torch.nn.Module`` subclasses such as
    :class:`refimpl.torch.AdditivePerturbation` satisfy it (a runtime-checkable protocol,
    as ``rai_toolbox.perturbations.PerturbationModel``)."""

    def __call__(self, data: torch.Tensor) -> torch.Tensor: ...  # pragma: no cover

    def parameters(
        self, recurse: bool = True
    ) -> Iterator[torch.nn.Parameter]: ...  # pragma: no cover


def _class_of(factory: Any) -> type | None:
    """The class that ``factory(...)`` instantiates: a class itself, or the class of a
    ``functools.partial``; None for anything else."""
    cls = factory.func if isinstance(factory, functools.partial) else factory
    return cls if inspect.isclass(cls) else None


def _builds_perturbation_model(factory: Any) -> bool:
    cls = _class_of(factory)
    return cls is not None and callable(getattr(cls, "parameters", None))


def _builds_optimizer(factory: Any) -> bool:
    cls = _class_of(factory)
    return cls is not None and issubclass(cls, torch.optim.Optimizer)


class _Frozen:
    """``requires_grad=False`` on the given leaf tensors and modules' parameters, restored on
    exit; ``eval()`` on the given modules, each submodule's mode restored on exit."""

    def __init__(self, tensors: list[torch.Tensor], modules: list[torch.nn.Module]) -> None:
        params = [p for m in modules for p in m.parameters()]
        self._unfreeze = [t for t in tensors + params if t.is_leaf and t.requires_grad]
        self._modes = [(m, m.training) for top in modules for m in top.modules()]

    def __enter__(self) -> None:
        for t in self._unfreeze:
            t.requires_grad_(False)
        for m, _ in self._modes:
            m.train(False)  # what eval() does, module by module

    def __exit__(self, *exc: Any) -> None:
        for t in self._unfreeze:
            t.requires_grad_(True)
        for m, training in self._modes:  # parents first (``modules()`` is pre-order)
            m.train(training)


def gradient_ascent(
    *,
    model: Callable[[torch.Tensor], torch.Tensor],
    data: Any,
    target: Any,
    optimizer: Any,
    steps: int,
    perturbation_model: Any = AdditivePerturbation,
    targeted: bool = False,
    use_best: bool = False,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    reduction_fn: Callable[[torch.Tensor], torch.Tensor] = torch.sum,
    **optim_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve for perturbations of ``data`` that move ``model``'s output away from ``target``
    (towards it with ``targeted=True``), and return ``(perturbed_data, losses)``.

    The parameters are rai_toolbox 0.2.1's, all keyword-only.

    Parameters
    ----------
    model : callable, frozen (``requires_grad=False``) and in eval mode during the solve
        when it is an ``nn.Module``.
    data, target : tensors or array-likes (``torch.as_tensor``); shape-(N, ...) batches.
    optimizer : an optimizer class or ``functools.partial`` of one, built as
        ``optimizer(perturbation_model.parameters(), **optim_kwargs)``; or an optimizer
        instance, allowed only with a perturbation model instance and no ``optim_kwargs``.
    steps : the number of optimizer steps.
    perturbation_model : a :class:`PerturbationModel`, or a class (or partial) built as
        ``perturbation_model(data)``; default :class:`~refimpl.torch.AdditivePerturbation`.
    targeted : descend on the criterion (towards ``target``) instead of ascending.
    use_best : return, per datum, the perturbed data with the best loss over all steps; the
        criterion must then return one loss per datum.
    criterion : per-datum loss ``criterion(model(xadv), target)``; default
        ``CrossEntropyLoss(reduction="none")``.
    reduction_fn : reduces the per-datum losses to the scalar that is differentiated
        (``torch.mean`` for a universal perturbation).

    Returns
    -------
    ``(xadv, losses)``, detached: the perturbed data and its losses (the best ones with
    ``use_best``), in the criterion's sign whether or not ``targeted``.

    Examples
    --------
    >>> from torch.optim import SGD
    >>> xadv, losses = gradient_ascent(
    ...     data=[-1.0, 2.0], target=0.0, model=lambda x: x,
    ...     criterion=lambda out, t: (out - t).abs(), optimizer=SGD, lr=0.1, steps=5)
    >>> xadv
    tensor([-1.5000,  2.5000])
    """
    check_callable("model", model)
    steps = check_int("steps", steps, low=0)
    check_bool("targeted", targeted)
    check_bool("use_best", use_best)
    check_callable("criterion", criterion, optional=True)
    check_callable("reduction_fn", reduction_fn)

    data = torch.as_tensor(data)
    target = torch.as_tensor(target)
    if not data.is_leaf:
        data = data.detach()
    if not target.is_leaf:
        target = target.detach()

    if criterion is None:
        criterion = torch.nn.CrossEntropyLoss(reduction="none")
    sign_criterion = criterion if targeted else _negated(criterion)  # always minimised

    builds_model = _builds_perturbation_model(perturbation_model)
    if builds_model:
        pmodel = perturbation_model(data)
    elif isinstance(perturbation_model, PerturbationModel) and not inspect.isclass(
        perturbation_model
    ):
        pmodel = perturbation_model
    else:
        raise TypeError(
            "perturbation_model must satisfy the PerturbationModel protocol (a callable "
            "with .parameters(), e.g. an nn.Module) or be a class or functools.partial "
            f"building one from the data, got {perturbation_model!r}"
        )

    if _builds_optimizer(optimizer):
        optim = optimizer(pmodel.parameters(), **optim_kwargs)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            "optimizer must be a torch.optim.Optimizer instance, or a class or "
            f"functools.partial building one, got {optimizer!r}"
        )
    elif builds_model:
        raise TypeError(
            "an optimizer instance can only be passed with a perturbation_model instance "
            "(the optimizer must hold that model's parameters); pass the optimizer's class "
            "or a functools.partial of it instead"
        )
    elif optim_kwargs:
        raise TypeError(
            f"the optimizer keyword arguments {sorted(optim_kwargs)} were given, but "
            "optimizer is already built: pass its class (or a functools.partial) or drop them"
        )
    else:
        optim = optimizer

    modules = [model] if isinstance(model, torch.nn.Module) else []
    best_loss: torch.Tensor | None = None
    best_x: torch.Tensor | None = None
    with _Frozen([data, target], modules), torch.enable_grad():
        for _ in range(steps):
            xadv = pmodel(data)
            losses = sign_criterion(model(xadv), target)
            loss = reduction_fn(losses)
            if use_best:
                _check_per_datum(losses, data)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            if use_best:
                x_now, loss_now = xadv.detach(), losses.detach()
                if best_x is None:  # copies: later steps overwrite them in place
                    x_now, loss_now = x_now.clone(), loss_now.clone()
                best_loss, best_x = _replace_best(loss_now, best_loss, x_now, best_x)
        optim.zero_grad(set_to_none=True)

        with torch.no_grad():  # the final evaluation
            xadv = pmodel(data)
            losses = sign_criterion(model(xadv), target)
            if use_best:
                losses, xadv = _replace_best(losses, best_loss, xadv, best_x, min=True)

    if not targeted:  # back to the criterion's own sign
        losses = -1 * losses
    return xadv.detach(), losses.detach()


def _negated(criterion: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(criterion)
    def negated(*args: Any, **kwargs: Any) -> Any:
        return -criterion(*args, **kwargs)

    return negated


def _check_per_datum(losses: torch.Tensor, data: torch.Tensor) -> None:
    if (
        (losses.ndim == 0 and data.ndim > 0)
        or losses.ndim > data.ndim
        or tuple(losses.shape) != tuple(data.shape[: losses.ndim])
    ):
        raise ValueError(
            "use_best=True needs one loss per datum, but criterion returned a tensor of "
            f"shape {tuple(losses.shape)} for data of shape {tuple(data.shape)}; expected "
            f"shape {tuple(data.shape[:1])} (e.g. reduction='none')"
        )


def random_restart(
    solver: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    repeats: int,
) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Wrap ``solver`` (e.g. :func:`gradient_ascent`) so that a call runs it ``repeats``
    times with the same arguments and returns, per datum, the best ``(xadv, losses)``: the
    largest loss, or the smallest when the call has ``targeted=True``. Random restarts come
    from a perturbation model that draws its initial value (``init_fn``) on every build.

    The example is rai's; its docstring prints ``[1.0115, 2.8682]``, from the L1 sampler's
    older positive-only draws (the erratum of cases ``000.additive.*``): 0.2.1 itself gives
    the values below, as this does.

    Examples
    --------
    >>> from functools import partial
    >>> import torch
    >>> from torch.optim import SGD
    >>> from refimpl.torch import AdditivePerturbation, uniform_like_l1_n_ball_
    >>> model = partial(AdditivePerturbation, init_fn=uniform_like_l1_n_ball_,
    ...                 generator=torch.Generator().manual_seed(0))
    >>> xadv, losses = random_restart(gradient_ascent, 3)(
    ...     perturbation_model=model, data=[-1.0, 2.0], target=0.0, model=lambda x: x,
    ...     criterion=lambda out, t: (out - t).abs(), optimizer=SGD, lr=0.1, steps=1)
    >>> losses   # rai_toolbox 0.2.1 gives these too; its docstring's [1.0115, 2.8682]
    tensor([1.5963, 2.7341])
    """
    check_callable("solver", solver)
    repeats = check_int("repeats", repeats, low=1)

    @functools.wraps(solver)
    def random_restart_fn(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        targeted = kwargs.get("targeted", False)
        best_x = best_loss = None
        for _ in range(repeats):
            xadv, losses = solver(*args, **kwargs)
            best_loss, best_x = _replace_best(losses, best_loss, xadv, best_x, min=targeted)
        return best_x, best_loss

    return random_restart_fn


def _replace_best(
    loss: torch.Tensor,
    best_loss: torch.Tensor | None,
    data: torch.Tensor,
    best_data: torch.Tensor | None,
    min: bool = True,  # noqa: A002 (rai's keyword)
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(best_loss, best_data)`` updated in place where ``loss`` is better (smaller with
    ``min``, else larger); the first call (``best_loss is None``) returns ``loss, data``.
    rai_toolbox's private helper of the same name and signature."""
    if best_loss is None or best_data is None:
        return loss, data
    replace = loss < best_loss if min else loss > best_loss
    best_data[replace] = data[replace]
    best_loss[replace] = loss[replace]
    return best_loss, best_data
