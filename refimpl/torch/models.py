r"""Any ``torch.nn.Module`` (or callable on tensors) as a model of the derivative protocol.

``as_model(module)`` gives an object with ``f(x)``, ``f.jvp(x, v)``, ``f.vjp(x, u)`` and
``f.linearize(x)`` (docs/design.md, the derivative protocol), so every refimpl algorithm (Jacobian and Fisher
operators, eigendistortions, attributions) runs on real torch models. ``linearize(x)`` runs
the module once with autograd recording; every product at ``x`` reuses that graph:

* ``vjp`` :math:`J^\top u`: one backward pass through the recorded graph
  (``torch.autograd.grad(..., retain_graph=True)``); a cotangent batch is one vmapped backward
  (``is_grads_batched=True``), a batch of one vector a plain backward (vmap's set-up costs
  about as much as a small model's backward pass).
* ``jvp`` :math:`J v`, two routes (``jvp_mode``):

  - ``"double_backward"``: :math:`g(d) = J^\top d` is linear in a dummy cotangent :math:`d`,
    so :math:`J v = \partial \langle g(d), v\rangle / \partial d`: a backward pass through
    the graph of :math:`g`, which is recorded once per linearization (on the first JVP) and
    kept (J. Townsend, "A new trick for calculating Jacobian vector products", 2017). A
    tangent batch is one vmapped backward through it.
  - ``"forward"``: forward mode (``torch.autograd.forward_ad``): the module runs again with
    dual tensors for every product (primal and tangent), recording nothing.

  ``"auto"`` (the default) is the rule: double backward on the retained graph, and forward
  mode for a module whose backward pass cannot be differentiated (a custom
  ``autograd.Function`` with a ``once_differentiable`` or detached backward, an operation
  without a double-backward formula); the first product that finds this out is made again by
  forward mode and the model keeps that route (:attr:`TorchModel.jvp_route`). The rule is
  chosen, not timed, so results never depend on the machine's load. Why this route: a Fisher
  product :math:`F v = J^\top (J v)` on plenoptic's retained graph records the graph of
  :math:`g` (a backward pass with ``create_graph=True``), differentiates it for :math:`J v`
  and runs one more backward for :math:`J^\top (J v)`, at every product; here the first step
  is done once per linearization, so a product is a strict subset of that work (measured:
  ``python -m benchmarks linops``: 0.5x to 0.7x plenoptic's CPU time per product on its
  front-end models). Forward mode repeats the whole forward pass, primal and tangent, for
  every product: 0.8x to 1.3x plenoptic's, slower on its smallest model. The routes agree
  to rounding (``tests/torch/test_model_routes.py``).

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
        if not isinstance(jvp_mode, str) or jvp_mode not in JVP_MODES:
            raise ValueError(f"jvp_mode must be one of {JVP_MODES}, got {jvp_mode!r}")
        self.module = module
        self.jvp_mode = jvp_mode
        #: why the double-backward route failed on this module (None: it has not failed)
        self._double_backward_error: str | None = None
        self._vmap_ok = {"jvp": True, "vjp": True}
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

    @property
    def jvp_route(self) -> str:
        """The route JVPs take: "double_backward" (on the graph retained per linearization)
        or "forward" (forward mode; "auto" switches to it for good where the module's
        backward proved not differentiable)."""
        if self.jvp_mode == "forward" or self._double_backward_error is not None:
            return "forward"
        return "double_backward"

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
        r"""Record the graph of the module at ``x`` once; every product at ``x`` reuses it
        (and the double-backward route adds, on its first JVP, the graph of
        :math:`J^\top d`, kept as well)."""
        x = self._check_input(x)
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad():
            out = _flat_output(self.module(xg))
        if not out.is_floating_point():
            raise TypeError(f"the model output must be floating, got {out.dtype}")
        y = out.detach()
        if not out.requires_grad:  # the output does not depend on x (nor on anything else)
            return _TorchLinearization(
                x, y, lambda v: _zeros_like_batch(v, x, y), lambda u: _zeros_like_batch(u, y, x)
            )
        graph = _Graph(self, x, xg, out)
        return _TorchLinearization(x, y, graph.jvp, graph.vjp)

    # -- autograd helpers -----------------------------------------------------------------
    def _batched(
        self,
        kind: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
        one: Callable[[torch.Tensor], torch.Tensor],
        a: torch.Tensor,
    ) -> torch.Tensor:
        """``fn(a)`` in one vmapped call; where vmap cannot run the graph, a loop of ``one``
        (remembered per direction ``kind``, "jvp" or "vjp")."""
        if self._vmap_ok[kind]:
            try:
                return fn(a)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError):
                self._vmap_ok[kind] = False
        return torch.stack([one(a[i]) for i in range(a.shape[0])])


def _grad(
    out: torch.Tensor, inp: torch.Tensor, cot: torch.Tensor, *, batched: bool = False
) -> torch.Tensor:
    r""":math:`(\partial out / \partial inp)^\top cot` through a retained graph (zeros where
    ``out`` does not depend on ``inp``)."""
    (g,) = torch.autograd.grad(
        out, inp, cot, retain_graph=True, allow_unused=True, is_grads_batched=batched
    )
    if g is None:
        return _zeros_like_batch(cot, out, inp)
    return g.detach()


class _NoDoubleBackward(RuntimeError):
    """The module's backward pass records no graph in its cotangent."""


class _Graph:
    r"""The products of one linearization: the graph of ``out = module(xg)``, and, built on the
    first double-backward JVP, the graph of :math:`g(d) = J^\top d` in a dummy ``d``."""

    def __init__(self, model: TorchModel, x: torch.Tensor, xg: torch.Tensor, out: torch.Tensor):
        self.model, self.x, self.xg, self.out = model, x, xg, out
        self.y = out.detach()
        self.g: torch.Tensor | None = None
        self.d: torch.Tensor | None = None

    # -- J^T u ----------------------------------------------------------------------------
    def vjp(self, u: torch.Tensor) -> torch.Tensor:
        self.model.n_vjp += 1 if u.ndim == self.y.ndim else u.shape[0]
        if u.ndim == self.y.ndim:
            return _grad(self.out, self.xg, u)
        if u.shape[0] == 1:  # a block of one vector: no vmap (its set-up costs a product's)
            return _grad(self.out, self.xg, u[0])[None]
        return self.model._batched(
            "vjp", lambda U: _grad(self.out, self.xg, U, batched=True), self._vjp_one, u
        )

    def _vjp_one(self, u: torch.Tensor) -> torch.Tensor:
        return _grad(self.out, self.xg, u)

    # -- J v ------------------------------------------------------------------------------
    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        model = self.model
        model.n_jvp += 1 if v.ndim == self.x.ndim else v.shape[0]
        if v.ndim == self.x.ndim:
            return self._jvp_one(v)
        if v.shape[0] == 1:  # a block of one vector: no vmap
            return self._jvp_one(v[0])[None]
        if model.jvp_route == "double_backward":
            return model._batched("jvp", self._jvp_block_double_backward, self._jvp_one, v)
        return torch.stack([self._jvp_one(v[i]) for i in range(v.shape[0])])

    def _jvp_one(self, v: torch.Tensor) -> torch.Tensor:
        model = self.model
        if model.jvp_route == "double_backward":
            try:
                return self._jvp_double_backward(v)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError) as exc:
                if model.jvp_mode == "double_backward":
                    raise RuntimeError(
                        f"{model!r} with jvp_mode='double_backward': the module's backward pass "
                        f"cannot be differentiated ({type(exc).__name__}: {exc}); use "
                        "jvp_mode='auto' or 'forward'"
                    ) from exc
                model._double_backward_error = f"{type(exc).__name__}: {exc}"
        try:
            return self._jvp_forward(v)
        except (RuntimeError, NotImplementedError) as exc:
            if model._double_backward_error is None:
                raise
            raise RuntimeError(
                f"{model!r}: no JVP route works on this module: its backward pass cannot be "
                f"differentiated ({model._double_backward_error}) and its forward pass has no "
                f"forward mode ({type(exc).__name__}: {exc})"
            ) from exc

    def _dummy_graph(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        r""":math:`g(d) = J^\top d` with its graph in ``d`` (recorded once, then kept); ``g``
        None when the output does not depend on ``x`` (J = 0)."""
        if self.d is None:
            d = torch.zeros_like(self.y, requires_grad=True)  # any value: g is linear in d
            with torch.enable_grad():
                (g,) = torch.autograd.grad(
                    self.out, self.xg, d, retain_graph=True, create_graph=True, allow_unused=True
                )
            if g is not None and not g.requires_grad:
                raise _NoDoubleBackward(
                    "the module's backward pass records no graph (not differentiable)"
                )
            self.g, self.d = g, d
        return self.g, self.d

    def _jvp_double_backward(self, v: torch.Tensor) -> torch.Tensor:
        g, d = self._dummy_graph()
        if g is None:
            return _zeros_like_batch(v, self.x, self.y)
        # allow_unused=False: a g that does not reach d means a broken double backward
        (jv,) = torch.autograd.grad(g, d, v, retain_graph=True)
        return jv.detach()

    def _jvp_block_double_backward(self, V: torch.Tensor) -> torch.Tensor:
        g, d = self._dummy_graph()
        if g is None:
            return _zeros_like_batch(V, self.x, self.y)
        (jv,) = torch.autograd.grad(g, d, V, retain_graph=True, is_grads_batched=True)
        return jv.detach()

    def _jvp_forward(self, v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), forward_ad.dual_level():  # records no graph
            dual = forward_ad.make_dual(self.x, v)
            t = forward_ad.unpack_dual(_flat_output(self.model.module(dual))).tangent
        return torch.zeros_like(self.y) if t is None else t.detach()


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

    ``jvp_mode``: "auto" (double backward on the graph retained per linearization; forward
    mode for a module whose backward pass cannot be differentiated), "double_backward"
    (only that), "forward" (forward mode only, the module re-run per product). See the
    module docstring for the rule and its measurement.
    """
    return TorchModel(module, jvp_mode=jvp_mode)
