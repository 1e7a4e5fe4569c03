"""plenoptic's ``Eigendistortion`` for torch modules, on ``refimpl.eigendistortion``.

Same constructor and method signatures as plenoptic 2.1.1 (``Eigendistortion(image,
model)``, ``synthesize(method="power", k=1, max_iter=1000, p=5, q=2,
stop_criterion=1e-7)``, ``save``, ``load``, ``to``, ``compute_jacobian``), the same image
rules and attributes, so code switches by changing the import::

    from refimpl.torch import Eigendistortion   # was: from plenoptic import Eigendistortion

The module runs through :func:`refimpl.torch.as_model` (forward-mode JVPs, vmapped batches
of products), so the results equal those of ``refimpl`` on an explicit model with the same
weights. Differences from plenoptic (README, "Differences"): the verified bugs are fixed
(shifted first step, decreasing bottom block, clip instead of abs, re-orthonormalised
randomized SVD, 1-d eigenvalues for k = 1); ``stop_criterion`` is a residual relative to
the largest eigenvalue; ``method="eigsh"`` (Lanczos) is added; files are ``.npz`` with JSON
metadata, not pickles; ``rng=`` and ``progress=`` keywords; random starts use
``torch.default_generator`` unless ``rng`` is given (plenoptic: the global RNG as well).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from refimpl.eigendistortion import Eigendistortion as _Eigendistortion
from refimpl.torch.checks import check_device, check_tensor, check_values
from refimpl.torch.models import as_model
from refimpl.validation import check_bool, check_real

__all__ = ["Eigendistortion"]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _validate_input(image: Any) -> None:
    """plenoptic's ``validate_input(image, no_batch=True)``."""
    check_values(check_tensor(image, "image"), "image")
    if image.dtype not in _FLOATS:
        raise TypeError(
            f"image must have a real floating dtype (float16/32/64), got {image.dtype} "
            "(complex images are not supported)"
        )
    if image.ndim != 4:
        warnings.warn(
            "plenoptic's methods have mostly been tested on 4d inputs with shape "
            "torch.Size([n_batch, n_channels, im_height, im_width]); got "
            f"{tuple(image.shape)}",
            UserWarning,
            stacklevel=3,
        )
    if image.ndim > 1 and image.shape[0] != 1:
        raise ValueError(
            f"input_tensor batch dimension must be 1. (image shape {tuple(image.shape)}: "
            "one image at a time)"
        )
    if image.numel() and bool(torch.isfinite(image).all()):
        lo, hi = float(image.min()), float(image.max())
        if lo < 0.0 or hi > 1.0:
            warnings.warn(
                f"input_tensor range is {(lo, hi)}; plenoptic's methods have largely been "
                "tested with the range [0, 1]",
                UserWarning,
                stacklevel=3,
            )


def _snapshot(module: torch.nn.Module) -> Any:
    """A function that puts back the parameters (data and gradient) and buffers ``module``
    has now, whatever ``module.to()`` does to them in between."""
    params, buffers = [], []
    for sub in module.modules():
        for name, p in sub.named_parameters(recurse=False):
            grad = p.grad
            params.append((sub, name, p, p.data, grad, None if grad is None else grad.data))
        buffers += [(sub, name, b) for name, b in sub.named_buffers(recurse=False)]

    def undo() -> None:
        for sub, name, p, data, grad, grad_data in params:
            p.data = data  # Module.to sets .data of the parameter and of its gradient
            if grad is not None:
                grad.data = grad_data
            p.grad = grad
            setattr(sub, name, p)
        for sub, name, b in buffers:
            setattr(sub, name, b)

    return undo


class Eigendistortion:
    """Eigendistortions of a torch model at ``image`` (plenoptic's signature).

    Its attributes are plenoptic's: ``image``, ``model``, ``eigendistortions``
    ``(n_dist, *image.shape[1:])``, ``eigenvalues`` (decreasing, >= 0, always 1-d),
    ``eigenindex``, ``jacobian``, and ``convergence`` (residuals, products, per block).

    Parameters
    ----------
    image : Tensor
        One image: 1-D, or ``image.shape[0] == 1`` (e.g. ``(1, C, H, W)``).
    model : nn.Module or callable
        On the image's device and dtype. Its outputs may be a tensor, or a tuple/list/dict of
        tensors (concatenated).
    """

    def __init__(self, image: torch.Tensor, model: Any) -> None:
        _validate_input(image)
        if isinstance(model, torch.nn.Module) and model.training:
            warnings.warn(
                "model is in training mode, you probably want to call eval() to switch to "
                "evaluation mode",
                UserWarning,
                stacklevel=2,
            )
        self._model = model
        self._build(image.detach())

    def _build(self, image: torch.Tensor) -> None:
        self._ref = _Eigendistortion(image, as_model(self._model))

    # -- plenoptic's attributes -----------------------------------------------------------
    @property
    def image(self) -> torch.Tensor:
        return self._ref.image

    @property
    def model(self) -> Any:
        return self._model

    @property
    def jacobian(self) -> torch.Tensor | None:
        return self._ref.jacobian

    @property
    def eigendistortions(self) -> torch.Tensor | None:
        return self._ref.eigendistortions

    @property
    def eigenvalues(self) -> torch.Tensor | None:
        return self._ref.eigenvalues

    @property
    def eigenindex(self) -> torch.Tensor | None:
        return self._ref.eigenindex

    @property
    def convergence(self) -> dict[str, Any]:
        return self._ref.convergence

    @property
    def method(self) -> str | None:
        return self._ref.method

    def __repr__(self) -> str:
        return (
            f"Eigendistortion(\n  image = {self.image.shape} ({self.image.dtype}),\n"
            f"  model = {self._model!r},\n)"
        )

    # -- synthesis -------------------------------------------------------------------------
    def synthesize(
        self,
        method: str = "power",
        k: int = 1,
        max_iter: int = 1000,
        p: int = 5,
        q: int = 2,
        stop_criterion: float = 1e-7,
        *,
        rng: Any = None,
        progress: bool = True,
        lanczos: str = "auto",
    ) -> None:
        """See :meth:`refimpl.eigendistortion.Eigendistortion.synthesize`; ``rng=None``
        draws from ``torch.default_generator`` (so ``torch.manual_seed`` / ``po.set_seed``
        make runs reproducible, as in plenoptic)."""
        self._ref.synthesize(
            method,
            k,
            max_iter,
            p,
            q,
            stop_criterion,
            rng=torch.default_generator if rng is None else rng,
            progress=progress,
            lanczos=lanczos,
        )

    def compute_jacobian(self) -> torch.Tensor:
        return self._ref.compute_jacobian()

    def _indexer(self, idx: int) -> int:
        return self._ref.indexer(idx)

    indexer = _indexer

    # -- device, persistence ---------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Eigendistortion:
        """Move and/or cast the image, the results and the model (``torch.Tensor.to``
        arguments); integer results (``eigenindex``) only change device.

        All or nothing: a dtype other than float32/float64 (TypeError: the eigensolvers need
        single precision at least) or a device the image cannot reach (ValueError) is refused
        before anything is touched, and if the model fails on the moved image (its output
        overflows in float32, it keeps tensors on the old device, ...) the model's parameters
        and buffers are put back as they were before the error is raised."""
        image = self._moved_image(args, kwargs)
        old = self._ref
        result = old.result
        if result is not None:
            result = result.map(
                lambda a: a.to(*args, **kwargs), lambda i: i.to(device=image.device)
            )
        jacobian = None if old.jacobian is None else old.jacobian.to(*args, **kwargs)
        model, undo = self._moved_model(args, kwargs)
        try:
            ref = _Eigendistortion(image, as_model(model))
            ref.restore(result, jacobian)
        except BaseException:
            undo()
            raise
        self._model, self._ref = model, ref
        return self

    def _moved_image(self, args: tuple, kwargs: dict) -> torch.Tensor:
        """The image moved by ``.to(*args, **kwargs)`` (a copy: nothing else changes), after
        the checks that it can be: a reachable device, float32 or float64."""
        try:
            image = self.image.to(*args, **kwargs)
        except (RuntimeError, AssertionError) as exc:  # unknown or unavailable device
            raise ValueError(
                f"to: cannot move the image with the arguments {args}, {kwargs} ({exc}); the "
                "object and the model are left as they were"
            ) from None
        if image.device.type == "meta":
            raise ValueError(
                "to: the device 'meta' holds no values; the object and the model are left as "
                "they were"
            )
        if image.dtype not in (torch.float32, torch.float64):
            raise TypeError(
                f"to: the dtype must be torch.float32 or torch.float64, got {image.dtype}: the "
                "eigensolvers (eigh, QR) need at least single precision; the object and the "
                "model are left as they were"
            )
        return image

    def _moved_model(self, args: tuple, kwargs: dict) -> tuple[Any, Any]:
        """``(model moved by .to(), undo)``: ``undo()`` puts every parameter, gradient and
        buffer of an ``nn.Module`` back (the same tensors, so nothing is rounded). A model
        without ``.to`` is left as it is (plenoptic's warning)."""
        model = self._model
        to = getattr(model, "to", None)
        if to is None:
            warnings.warn("Unable to call model.to(), so we leave it as is.", stacklevel=3)
            return model, lambda: None
        undo = _snapshot(model) if isinstance(model, torch.nn.Module) else lambda: None
        try:
            return to(*args, **kwargs), undo
        except BaseException:
            undo()
            raise

    def save(self, file_path: str) -> None:
        """Save to ``file_path``: an ``.npz`` archive with JSON metadata (no pickle),
        written atomically. The model itself is not saved, only its output at the image."""
        self._ref.save(file_path)

    def load(
        self,
        file_path: str,
        map_location: Any = None,
        raise_on_checks: bool = True,
        tensor_equality_atol: float = 1e-8,
        tensor_equality_rtol: float = 1e-5,
        **pickle_load_args: Any,
    ) -> None:
        """Load a file written by :meth:`save` into this just-initialized object.

        Raises ValueError when the file was made from another image or another model (its
        output at the image differs); ``raise_on_checks=False`` makes those warnings. The
        tolerances must be finite and >= 0. A damaged or crafted file raises ValueError
        naming the path, and nothing is loaded.
        Arrays are loaded onto the image's device (``map_location`` must be None or name
        that device). Files are not pickles: ``pickle_load_args`` are refused.
        """
        if pickle_load_args:
            raise TypeError(
                f"load got unexpected arguments {sorted(pickle_load_args)}: the file is an "
                ".npz archive with JSON metadata, not a pickle"
            )
        check_bool("raise_on_checks", raise_on_checks)
        check_real("tensor_equality_atol", tensor_equality_atol, low=0.0)
        check_real("tensor_equality_rtol", tensor_equality_rtol, low=0.0)
        want = None if map_location is None else check_device("map_location", map_location)
        have = self.image.device
        if want is not None and (want.type, want.index or have.index) != (have.type, have.index):
            raise ValueError(
                f"map_location={map_location!r} differs from the image's device "
                f"{self.image.device}: make the object with the image on that device (or "
                "call .to() after loading)"
            )
        self._ref.load(
            file_path,
            raise_on_checks=raise_on_checks,
            atol=tensor_equality_atol,
            rtol=tensor_equality_rtol,
        )
