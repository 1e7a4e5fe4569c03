r"""Any ``torch.nn.Module`` (or callable on tensors) as a model of the derivative protocol.

``as_model(module)`` gives an object with ``f(x)``, ``f.jvp(x, v)``, ``f.vjp(x, u)`` and
``f.linearize(x)`` (docs/design.md, the derivative protocol), so every refimpl algorithm (Jacobian and Fisher
operators, eigendistortions, attributions) runs on real torch models:

* ``vjp`` :math:`J^\top u`: reverse mode on a graph recorded once per linearization
  (``torch.autograd.grad(..., retain_graph=True)``); a cotangent batch is one vmapped backward
  (``is_grads_batched=True``).
* ``jvp`` :math:`J v`: forward mode (``torch.autograd.forward_ad``: one forward pass with dual
  tensors), or, where a module does not support forward mode, the double-backward trick:
  :math:`g(d) = J^\top d` is linear in a dummy cotangent :math:`d`, so
  :math:`J v = \partial \langle g(d), v\rangle / \partial d`, a second backward through the
  recorded graph. A tangent batch uses the double-backward route in one vmapped call.
  ``torch.func.jvp`` is not used: it crashes on models that assign to parameters in
  ``forward`` (plenoptic 2.1.1's ``Gaussian``).

Outputs that are tuples, lists or dicts of tensors are flattened and concatenated (dicts in
their order), as plenoptic does, into one vector. The module keeps its device and dtype: the
input must match them. Products are counted in ``n_jvp`` and ``n_vjp`` (vectors).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.autograd import forward_ad

from refimpl.models import Linearization
from refimpl.validation import leading_batch

__all__ = ["TorchModel", "as_model"]

JVP_MODES = ("auto", "forward", "double_backward")
_STOCHASTIC = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


def _flat_output(out: Any) -> torch.Tensor:
    """A tensor output as is; a tuple/list/dict of tensors flattened and concatenated."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        parts = list(out.values())
    elif isinstance(out, Sequence) and not isinstance(out, str):
        parts = list(out)
    else:
        raise TypeError(
            "the model must return a tensor, or a tuple, list or dict of tensors; got "
            f"{type(out).__name__}"
        )
    if not parts or not all(isinstance(p, torch.Tensor) for p in parts):
        raise TypeError("every output of the model must be a tensor (and there must be one)")
    return torch.cat([p.reshape(-1) for p in parts])


class TorchModel:
    """The protocol over a torch module; see :func:`as_model`."""

    def __init__(self, module: Callable[..., Any], *, jvp_mode: str = "auto") -> None:
        if not callable(module):
            raise TypeError(f"module must be a torch.nn.Module or a callable, got {module!r}")
        if jvp_mode not in JVP_MODES:
            raise ValueError(f"jvp_mode must be one of {JVP_MODES}, got {jvp_mode!r}")
        self.module = module
        self.jvp_mode = jvp_mode
        self._forward_ok = jvp_mode != "double_backward"
        self._vmap_ok = True
        params = []
        if isinstance(module, torch.nn.Module):
            params = [p for p in module.parameters() if p.is_floating_point()]
            params += [b for b in module.buffers() if b.is_floating_point()]
            if any(isinstance(m, _STOCHASTIC) for m in module.modules()) and module.training:
                warnings.warn(
                    "the module is in training mode and has dropout or batch-norm layers: its "
                    "output, and so its Jacobian, changes between calls; call module.eval()",
                    stacklevel=2,
                )
        self.device = params[0].device if params else None
        self.dtype = params[0].dtype if params else None
        self.n_jvp = self.n_vjp = 0

    def __repr__(self) -> str:
        return f"as_model({self.module!r})"

    @property
    def n_products(self) -> int:
        return self.n_jvp + self.n_vjp

    # -- checks ---------------------------------------------------------------------------
    def _check_input(self, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"x must be a torch.Tensor for a torch model, got {type(x).__module__}."
                f"{type(x).__name__} (convert with torch.as_tensor)"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must have a floating dtype, got {x.dtype}")
        if self.device is not None and x.device != self.device:
            raise ValueError(
                f"x is on {x.device} but the module's parameters are on {self.device}; move one"
            )
        if self.dtype is not None and x.dtype != self.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the module's parameters have {self.dtype}; use "
                f"module.to({x.dtype}) or cast x"
            )
        return x.detach()

    @staticmethod
    def _check_vec(a: Any, ref: torch.Tensor, *, name: str, of: str) -> torch.Tensor:
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(a).__name__}")
        if a.device != ref.device:
            raise ValueError(f"{name} is on {a.device} but {of} is on {ref.device}")
        if a.dtype != ref.dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but {of} has {ref.dtype}")
        leading_batch(a, tuple(ref.shape), name=name, expected=of)
        return a.detach()

    # -- the protocol ---------------------------------------------------------------------
    def __call__(self, x: Any) -> torch.Tensor:
        x = self._check_input(x)
        with torch.no_grad():
            return _flat_output(self.module(x))

    def jvp(self, x: Any, v: Any) -> torch.Tensor:
        return self.linearize(x).jvp(v)

    def vjp(self, x: Any, u: Any) -> torch.Tensor:
        return self.linearize(x).vjp(u)

    def linearize(self, x: Any) -> Linearization:
        """Record the graph at ``x`` once; products reuse it (the forward-mode JVP re-runs
        the module with dual tensors, which records nothing)."""
        x = self._check_input(x)
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad():
            out = _flat_output(self.module(xg))
        if not out.is_floating_point():
            raise TypeError(f"the model output must be floating, got {out.dtype}")
        y = out.detach()
        state: dict[str, Any] = {}

        def vjp(u: torch.Tensor) -> torch.Tensor:
            self.n_vjp += 1 if u.ndim == y.ndim else u.shape[0]
            if u.ndim == y.ndim:
                return self._grad(out, xg, u)
            return self._batched(lambda U: self._grad(out, xg, U, batched=True), vjp_one, u)

        def vjp_one(u: torch.Tensor) -> torch.Tensor:
            return self._grad(out, xg, u)

        def dummy_graph() -> tuple[torch.Tensor, torch.Tensor]:
            # g(d) = J^T d with a graph in d: J v = d<g(d), v>/dd, for any value of d
            if "g" not in state:
                d = torch.zeros_like(y, requires_grad=True)
                with torch.enable_grad():
                    (g,) = torch.autograd.grad(
                        out, xg, d, retain_graph=True, create_graph=True, allow_unused=True
                    )
                state["g"], state["d"] = (torch.zeros_like(x) if g is None else g), d
            return state["g"], state["d"]

        def jvp_double_backward(v: torch.Tensor, batched: bool = False) -> torch.Tensor:
            g, d = dummy_graph()
            if g.grad_fn is None:  # the output does not depend on x
                return _zeros_like_batch(v, x, y)
            return self._grad(g, d, v, batched=batched)

        def jvp_one(v: torch.Tensor) -> torch.Tensor:
            if self._forward_ok:
                try:
                    with torch.no_grad(), forward_ad.dual_level():  # records no graph
                        dual = forward_ad.make_dual(x, v)
                        t = forward_ad.unpack_dual(_flat_output(self.module(dual))).tangent
                    return torch.zeros_like(y) if t is None else t.detach()
                except (RuntimeError, NotImplementedError):
                    if self.jvp_mode == "forward":
                        raise
                    self._forward_ok = False  # this module has no forward mode: fall back
            return jvp_double_backward(v)

        def jvp(v: torch.Tensor) -> torch.Tensor:
            self.n_jvp += 1 if v.ndim == x.ndim else v.shape[0]
            if v.ndim == x.ndim:
                return jvp_one(v)
            if self.jvp_mode == "forward":
                return torch.stack([jvp_one(v[i]) for i in range(v.shape[0])])
            return self._batched(lambda V: jvp_double_backward(V, batched=True), jvp_one, v)

        if not out.requires_grad:  # the output does not depend on x (nor on anything else)
            return _TorchLinearization(
                x, y, lambda v: _zeros_like_batch(v, x, y), lambda u: _zeros_like_batch(u, y, x)
            )
        return _TorchLinearization(x, y, jvp, vjp)

    # -- autograd helpers -----------------------------------------------------------------
    @staticmethod
    def _grad(
        out: torch.Tensor, inp: torch.Tensor, cot: torch.Tensor, batched: bool = False
    ) -> torch.Tensor:
        (g,) = torch.autograd.grad(
            out, inp, cot, retain_graph=True, allow_unused=True, is_grads_batched=batched
        )
        if g is None:
            return _zeros_like_batch(cot, out, inp)
        return g.detach()

    def _batched(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        one: Callable[[torch.Tensor], torch.Tensor],
        a: torch.Tensor,
    ) -> torch.Tensor:
        """``fn(a)`` in one vmapped call; where vmap cannot run the graph, a loop of ``one``."""
        if self._vmap_ok:
            try:
                return fn(a)
            except (RuntimeError, NotImplementedError):
                self._vmap_ok = False
        return torch.stack([one(a[i]) for i in range(a.shape[0])])


class _TorchLinearization(Linearization):
    """Checks products' arguments in torch's words (device, dtype), then computes them."""

    def jvp(self, v: Any) -> torch.Tensor:
        return self.jvp_fn(TorchModel._check_vec(v, self.x, name="v (the tangent)", of="x"))

    def vjp(self, u: Any) -> torch.Tensor:
        return self.vjp_fn(
            TorchModel._check_vec(u, self.y, name="u (the cotangent)", of="the model output")
        )


def _zeros_like_batch(a: torch.Tensor, a_ref: torch.Tensor, out_ref: torch.Tensor) -> torch.Tensor:
    """Zeros shaped like ``out_ref`` with ``a``'s leading batch axis (if any)."""
    lead = tuple(a.shape[: a.ndim - a_ref.ndim])
    return torch.zeros((*lead, *out_ref.shape), dtype=out_ref.dtype, device=out_ref.device)


def as_model(module: Callable[..., Any], *, jvp_mode: str = "auto") -> TorchModel:
    """``module`` (an ``nn.Module`` or a callable on tensors) as a protocol model.

    ``jvp_mode``: "auto" (forward mode, falling back to double backward where the module
    does not support it; tangent batches by double backward), "forward", "double_backward".
    """
    return TorchModel(module, jvp_mode=jvp_mode)
