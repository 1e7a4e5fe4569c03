r"""torch front end of :mod:`refimpl.perturbations` with rai_toolbox's documented signatures.

* :class:`AdditivePerturbation` is an ``nn.Module`` whose ``delta`` is an ``nn.Parameter``:
  ``forward(data) = data + delta``, gradients by autograd.
* ``uniform_like_l1_n_ball_``, ``uniform_like_l2_n_ball_``, ``uniform_like_linf_n_ball_``
  overwrite a tensor in place (under ``no_grad``) with draws of the refimpl samplers. For the
  same ``torch.Generator`` state they give the values of rai_toolbox 0.2.1, bit for bit, and
  leave the generator in the same state (float32, float64, float16, bfloat16; CPU or CUDA
  tensors, drawn on ``generator.device``). Complex tensors: the L2 and Linf samplers draw
  uniformly in the complex ball (the documented library's complex draws are not uniform in
  it, see :mod:`refimpl.perturbations.samplers`).

Switching from the documented library is a change of import::

    from refimpl.torch import AdditivePerturbation, uniform_like_l1_n_ball_
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from refimpl.perturbations import (
    broadcast_shapes,
    delta_shape,
    pullback,
    uniform_like_l1_n_ball,
    uniform_like_l2_n_ball,
    uniform_like_linf_n_ball,
)
from refimpl.torch.checks import check_device, check_same_device, check_tensor
from refimpl.validation import check_callable, check_shape

__all__ = [
    "AdditivePerturbation",
    "uniform_like_l1_n_ball_",
    "uniform_like_l2_n_ball_",
    "uniform_like_linf_n_ball_",
]


class AdditivePerturbation(torch.nn.Module):
    r"""Modifies data by adding a trainable perturbation: :math:`x \mapsto x + \delta`.

    Same signature and behaviour as ``rai_toolbox.perturbations.AdditivePerturbation``
    (see :class:`refimpl.perturbations.AdditivePerturbation` for the parameters), with these
    deliberate differences: ``delta_ndim`` outside ``[-ndim, ndim]`` raises ValueError; a
    dtype that is neither real nor complex floating raises TypeError; ``init_fn`` runs under
    ``torch.no_grad()`` and may also be functional (a returned tensor is copied into
    ``delta``); data that is not a tensor raises TypeError; an unknown or unreachable
    ``device`` and data on another device than ``delta`` raise ValueError (torch: a
    RuntimeError or AssertionError).

    Examples
    --------
    >>> import torch
    >>> from refimpl.torch import AdditivePerturbation, uniform_like_l1_n_ball_
    >>> data = torch.ones(3, 2, 2)
    >>> p = AdditivePerturbation(data, uniform_like_l1_n_ball_, delta_ndim=-1,
    ...                          generator=torch.Generator().manual_seed(1))
    >>> (p(data) ** 2).mean().backward()   # p.delta.grad == (1 + p.delta) / 2
    """

    delta: torch.nn.Parameter

    def __init__(
        self,
        data_or_shape: torch.Tensor | tuple[int, ...],
        init_fn: Callable[..., Any] | None = None,
        *,
        device: Any = None,
        dtype: torch.dtype | None = None,
        delta_ndim: int | None = None,
        **init_fn_kwargs: Any,
    ) -> None:
        super().__init__()
        check_callable("init_fn", init_fn, optional=True)
        if init_fn is None and init_fn_kwargs:
            raise TypeError(
                f"no init_fn was given, but the init_fn keyword arguments {sorted(init_fn_kwargs)} "
                "were: pass init_fn (e.g. uniform_like_l1_n_ball_) or drop them"
            )
        if isinstance(data_or_shape, torch.Tensor):
            shape = tuple(data_or_shape.shape)
            opts = {"dtype": data_or_shape.dtype, "device": data_or_shape.device}
        elif hasattr(data_or_shape, "shape") and hasattr(data_or_shape, "dtype"):
            raise TypeError(
                "data_or_shape must be a torch.Tensor or a shape (a tuple of ints), got "
                f"{type(data_or_shape).__module__}.{type(data_or_shape).__qualname__}; "
                "convert arrays with torch.as_tensor"
            )
        else:
            shape, opts = check_shape("data_or_shape", data_or_shape), {}
        if device is not None:
            opts["device"] = check_device("device", device)
        if dtype is not None:
            opts["dtype"] = dtype
        _check_dtype(opts.get("dtype", torch.get_default_dtype()), given=dtype is not None)
        zeros = torch.zeros(delta_shape(shape, delta_ndim), **opts)
        self.delta = torch.nn.Parameter(zeros)
        if init_fn is not None:
            with torch.no_grad():
                result = init_fn(self.delta, **init_fn_kwargs)
                if result is not None and result is not self.delta:
                    self.delta.copy_(_same_shape(result, self.delta))

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        self._check_operand(data, "data")
        return data + self.delta

    # The explicit-derivative protocol of refimpl, for code written against it. ``u`` has the
    # output's shape (optionally a leading batch of cotangents); any other shape is an error.
    def vjp(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Gradient with respect to ``x`` for the output cotangent ``u``."""
        self._check_operand(x, "x")
        self._check_operand(u, "u", broadcast=False)
        return pullback(u.detach(), x.shape, self.delta.shape, x.shape, x.dtype)

    def vjp_delta(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Gradient with respect to ``delta`` (what ``backward`` leaves in ``delta.grad``)."""
        self._check_operand(x, "x")
        self._check_operand(u, "u", broadcast=False)
        d = self.delta
        return pullback(u.detach(), x.shape, d.shape, d.shape, d.dtype)

    def _check_operand(self, a: Any, name: str, *, broadcast: bool = True) -> None:
        """``a``: a tensor torch can combine with ``delta`` (device), and whose shape
        broadcasts with delta's (``broadcast``); an error naming ``name`` otherwise."""
        check_tensor(a, name)
        check_same_device(a, self.delta, name=name, ref_name="delta")
        if broadcast:
            _check_broadcast(a, self.delta, name)

    def extra_repr(self) -> str:
        return f"delta: shape={tuple(self.delta.shape)}, dtype={self.delta.dtype}"


def _same_shape(result: Any, delta: torch.Tensor) -> torch.Tensor:
    """What a functional ``init_fn`` returned: a tensor of ``delta``'s shape."""
    if not isinstance(result, torch.Tensor):
        raise TypeError(
            f"init_fn returned a {type(result).__module__}.{type(result).__qualname__}; "
            f"expected None (in place) or a tensor of shape {tuple(delta.shape)}"
        )
    if result.shape != delta.shape:
        raise ValueError(
            f"init_fn returned a tensor of shape {tuple(result.shape)}; expected None (in "
            f"place) or a tensor of shape {tuple(delta.shape)}"
        )
    return result


def _generator(generator: Any) -> torch.Generator:
    if generator is None:
        return torch.default_generator
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def _check_dtype(dtype: Any, *, given: bool) -> None:
    """TypeError unless delta's dtype (``dtype=``, else the data's or torch's default) is a
    floating or complex ``torch.dtype`` (an ``nn.Parameter`` of ints has no gradient)."""
    if isinstance(dtype, torch.dtype) and (dtype.is_floating_point or dtype.is_complex):
        return
    if given:
        raise TypeError(f"dtype must be a floating or complex torch.dtype, got {dtype!r}")
    raise TypeError(
        f"data_or_shape has the dtype {dtype}, but delta needs a floating or complex one: pass "
        "dtype=torch.float32 (for example) or floating data"
    )


def _check_broadcast(a: torch.Tensor, delta: torch.Tensor, name: str) -> None:
    """ValueError naming ``name`` when ``a``'s shape does not broadcast with ``delta``'s
    (torch's own error is a RuntimeError from inside the addition)."""
    try:
        broadcast_shapes(tuple(a.shape), tuple(delta.shape))
    except ValueError as exc:
        raise ValueError(
            f"{name} of shape {tuple(a.shape)} does not broadcast with delta of shape "
            f"{tuple(delta.shape)} ({exc})"
        ) from None


@torch.no_grad()
def uniform_like_l1_n_ball_(
    x: torch.Tensor,
    epsilon: float = 1.0,
    param_ndim: int | None = -1,
    generator: torch.Generator = torch.default_generator,
) -> None:
    r"""Overwrite ``x`` with uniform draws from the :math:`L^1` ball of radius ``epsilon``, one
    per sub-tensor selected by ``param_ndim``. See
    :func:`refimpl.perturbations.uniform_like_l1_n_ball` for the algorithm (sorted-uniform
    spacings with random signs)."""
    check_tensor(x, "x")
    g = _generator(generator)
    x.copy_(uniform_like_l1_n_ball(x.detach(), epsilon, param_ndim, rng=g))


@torch.no_grad()
def uniform_like_l2_n_ball_(
    x: torch.Tensor,
    epsilon: float = 1.0,
    param_ndim: int | None = -1,
    generator: torch.Generator = torch.default_generator,
) -> None:
    r"""Overwrite ``x`` with uniform draws from the :math:`L^2` ball of radius ``epsilon``, one
    per sub-tensor selected by ``param_ndim``. See
    :func:`refimpl.perturbations.uniform_like_l2_n_ball` (Voelker et al. 2017: a Gaussian in
    D + 2 dimensions, normalised, two coordinates dropped)."""
    check_tensor(x, "x")
    g = _generator(generator)
    x.copy_(uniform_like_l2_n_ball(x.detach(), epsilon, param_ndim, rng=g))


@torch.no_grad()
def uniform_like_linf_n_ball_(
    x: torch.Tensor,
    epsilon: float = 1.0,
    param_ndim: int | None = None,
    generator: torch.Generator = torch.default_generator,
) -> None:
    r""":math:`x_i \leftarrow U[-\epsilon, \epsilon)` in place, element by element.

    Values are assigned in ``x``'s memory order, as ``torch.empty_like(x).uniform_()`` does
    (for a transposed or channels-last ``x`` this is not the row-major order of its shape).
    ``param_ndim`` is validated but does not change the distribution.
    """
    check_tensor(x, "x")
    g = _generator(generator)
    perm = _memory_order(x)
    inverse = sorted(range(len(perm)), key=perm.__getitem__)
    draw = uniform_like_linf_n_ball(x.detach().permute(perm), epsilon, param_ndim, rng=g)
    x.copy_(draw.permute(inverse))


def _memory_order(x: torch.Tensor) -> list[int]:
    """The dimensions of ``x`` ordered as ``empty_like(x)`` lays them out in memory (outermost
    first); the identity for contiguous tensors."""
    if x.is_contiguous():
        return list(range(x.ndim))
    strides = torch.empty_like(x, device="meta").stride()
    return sorted(range(x.ndim), key=lambda i: -strides[i])
