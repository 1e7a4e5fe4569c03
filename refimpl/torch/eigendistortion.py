"""plenoptic's ``Eigendistortion`` for torch modules, on ``refimpl.eigendistortion``.

Same constructor and method signatures as plenoptic 2.1.1 (``Eigendistortion(image,
model)``, ``synthesize(method="power", k=1, max_iter=1000, p=5, q=2,
stop_criterion=1e-7)``, ``save``, ``load``, ``to``, ``compute_jacobian``), the same image
rules and attributes, so code switches by changing the import::

    from refimpl.torch import Eigendistortion   # was: from plenoptic import Eigendistortion

The module runs through :func:`refimpl.torch.as_model` (JVPs by double backward on the
graph kept from one forward pass, forward mode where that cannot run; vmapped batches of
products), so the results equal those of ``refimpl`` on an explicit model with the same
weights. Differences from plenoptic (README, "Differences"): the verified bugs are fixed
(shifted first step, decreasing bottom block, clip instead of abs, re-orthonormalised
randomized SVD, 1-d eigenvalues for k = 1); ``stop_criterion`` is a residual relative to
the largest eigenvalue; ``method="eigsh"`` (Lanczos) is added; files are ``.npz`` with JSON
metadata, or plenoptic's format for a ``.pt`` path (``.pt`` files, plenoptic's too, are
read with ``torch.load(weights_only=True)``); ``rng=``, ``progress=`` and ``warn_unconverged=`` keywords
(stopping at ``max_iter`` is silent unless asked, as in plenoptic); random starts use
``torch.default_generator`` unless ``rng`` is given (plenoptic: the global RNG as well).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
import zipfile
from typing import Any

import torch

from refimpl.eigendistortion import METHODS, EigendistortionResult
from refimpl.eigendistortion import Eigendistortion as _Eigendistortion
from refimpl.torch.checks import check_device, check_tensor, check_values
from refimpl.torch.models import as_model
from refimpl.validation import check_bool, check_real

__all__ = ["Eigendistortion"]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _validate_input(image: Any) -> None:
    """plenoptic's ``validate_input(image, no_batch=True)``."""
    check_values(check_tensor(image, "image"), "image")
    image = image.detach()  # an image that requires grad is read, not differentiated
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


_PLENOPTIC_CLASS = "plenoptic._synthesize.eigendistortion"
_registered = False


def _register_with_plenoptic() -> None:
    """Make plenoptic's plot helpers take this class: ``isinstance(ours, po.Eigendistortion)``
    is what they test, and plenoptic's class is an ABC, so this class is registered as a
    virtual subclass once the user has imported plenoptic (never imported here otherwise:
    the check looks in ``sys.modules``, at import, at construction and when ``image`` is
    read)."""
    global _registered
    if _registered:
        return
    module = sys.modules.get(_PLENOPTIC_CLASS)
    if module is None and "plenoptic" in sys.modules:  # the user imported plenoptic: its
        try:  # classes load lazily, this one may not be yet
            module = importlib.import_module(_PLENOPTIC_CLASS)
        except Exception:  # another plenoptic layout: its helpers do not see ours
            return
    base = getattr(module, "Eigendistortion", None)
    if base is not None and hasattr(base, "register"):
        base.register(Eigendistortion)
        _registered = True


def _load_jvp_decompositions() -> None:
    """torch's forward-mode AD imports ``torch._decomp.decompositions_for_jvp`` on its first
    use, and that import warns (DeprecationWarning: ``torch.jit.script``, from torch's own
    code) on recent torch; under warnings-as-errors (plenoptic's test settings) the first
    product would fail. It is imported here once, that warning ignored."""
    if "torch._decomp.decompositions_for_jvp" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            importlib.import_module("torch._decomp.decompositions_for_jvp")
        except Exception:  # torch without it: forward mode does not need it
            pass


def _check_output_precision(image: torch.Tensor, output: torch.Tensor) -> None:
    """plenoptic's ``validate_model`` rule: the model keeps the image's precision (float32
    in, float32 or complex64 out; float64, complex128), TypeError otherwise."""
    allowed = {
        torch.float32: (torch.float32, torch.complex64),
        torch.float64: (torch.float64, torch.complex128),
    }.get(image.dtype)
    if allowed is not None and output.dtype not in allowed:
        raise TypeError(
            f"model changes precision of input, don't do that! (image {image.dtype}, model "
            f"output {output.dtype}: cast the model to the image's dtype)"
        )


def _model_name(model: Any) -> str:
    """plenoptic's ``_get_name``: ``module.name`` of a function, ``module.Class`` of an
    object."""
    name = getattr(model, "__name__", None)
    if name is not None and hasattr(model, "__module__"):
        return f"{model.__module__}.{name}"
    return f"{type(model).__module__}.{type(model).__name__}"


def _is_torch_archive(path: Any) -> bool:
    """Whether ``path`` is a file written by ``torch.save`` (a zip archive whose members sit
    in one folder, with a ``data.pkl``), such as plenoptic's ``.pt`` files."""
    try:
        if not os.path.isfile(path) or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/data.pkl") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile, TypeError):
        return False


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
        _load_jvp_decompositions()
        self._build(image.detach())
        _check_output_precision(self._ref.image, self._ref.representation)
        _register_with_plenoptic()

    def _build(self, image: torch.Tensor) -> None:
        self._ref = _Eigendistortion(image, as_model(self._model))
        self._flat: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- plenoptic's autograd view: x (n, 1) requiring grad, y = model(x) flattened (m, 1) ----
    def _autograd_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(_image_flat, _representation_flat)`` as plenoptic builds them (its ``autodiff``
        helpers take them): made on first use, one more model call, none before."""
        image = self._ref.image
        if (
            self._flat is None
            or self._flat[0].device != image.device
            or (self._flat[0].dtype != image.dtype)
        ):
            x = image.detach().flatten().unsqueeze(1).requires_grad_(True)
            out = self._model(x.view(*image.shape))
            if isinstance(out, dict):
                out = list(out.values())
            if isinstance(out, tuple | list):
                y = torch.cat([o.squeeze().reshape(-1) for o in out]).unsqueeze(1)
            else:
                y = out.squeeze().reshape(-1).unsqueeze(1)
            self._flat = (x, y)
        return self._flat

    @property
    def _image_flat(self) -> torch.Tensor:
        """plenoptic's ``_image_flat``: the image as an ``(n, 1)`` column, requiring grad."""
        return self._autograd_pair()[0]

    @property
    def _representation_flat(self) -> torch.Tensor:
        """plenoptic's ``_representation_flat``: ``model(_image_flat.view(image.shape))``
        as an ``(m, 1)`` column, connected to ``_image_flat`` in the autograd graph."""
        return self._autograd_pair()[1]

    # -- plenoptic's attributes -----------------------------------------------------------
    @property
    def image(self) -> torch.Tensor:
        _register_with_plenoptic()  # plenoptic's helpers read it before their isinstance test
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
        """plenoptic's format: the class name, ``image = shape (dtype)``, and the model's
        ``__name__`` or its repr indented by two spaces."""
        tab = "  "
        name = getattr(self._model, "__name__", None)
        model = name if name is not None else repr(self._model).replace("\n", f"\n{tab}")
        return (
            f"{type(self).__name__}(\n{tab}image = {self.image.shape} ({self.image.dtype}),\n"
            f"{tab}model = {model},\n)"
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
        warn_unconverged: bool = False,
        executor: Any = None,
    ) -> None:
        """See :meth:`refimpl.eigendistortion.Eigendistortion.synthesize`; ``rng=None``
        draws from ``torch.default_generator`` (so ``torch.manual_seed`` / ``po.set_seed``
        make runs reproducible, as in plenoptic). Stopping at ``max_iter`` is silent, as in
        plenoptic, unless ``warn_unconverged=True``; ``convergence`` records it either way
        (``converged``, ``max_residual``, ``stop_criterion``, ``tolerance``). ``executor``
        (``randomized_svd``): where the sketch's column blocks are multiplied; the module
        goes there with every task (it must pickle for other processes)."""
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
            warn_unconverged=warn_unconverged,
            executor=executor,
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
        self._model, self._ref, self._flat = model, ref, None
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
        """Save to ``file_path``, written atomically (a temporary file, then renamed). The
        model itself is not saved, only its name and its output at the image.

        ``.pt``: plenoptic's format (``torch.save`` of plenoptic's attribute dict: tensors,
        sizes, strings and tuples only), which plenoptic's ``load`` and
        ``po.io.examine_saved_synthesis`` read, and :meth:`load` reads with
        ``torch.load(weights_only=True)``. ``.npz`` or no suffix: this project's ``.npz``
        archive with JSON metadata, which keeps ``method`` and ``convergence``. Any other
        suffix is refused (ValueError) and nothing is written."""
        try:
            name = os.fspath(file_path)
        except TypeError:
            name = None  # not a path: the checks of refimpl's save name the argument
        if isinstance(name, str) and name and not os.path.isdir(name):
            suffix = os.path.splitext(os.path.basename(name))[1].lower()
            if suffix == ".pt":
                self._save_plenoptic(name)
                return
            if suffix not in ("", ".npz"):
                raise ValueError(
                    f"file_path={file_path!r}: save writes plenoptic's format to a .pt path "
                    f"and an .npz archive to an .npz path (or one without a suffix), not "
                    f"{suffix!r}; nothing was written"
                )
        self._ref.save(file_path)

    def _save_plenoptic(self, path: str) -> None:
        """plenoptic 2.1.1's file: ``torch.save`` of its attributes (``_image``,
        ``_image_flat``, ``_representation_flat``, ``_eigendistortions``, ... and ``_model``
        as ``(name, ("_image",), model(image))``), with ``save_metadata``; this project's
        ``method`` is added to the metadata (plenoptic reads only ``synthesis_object``)."""
        if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
            raise ValueError(f"file_path={path!r} names a directory, not a file")
        image, result = self.image, self._ref.result
        x, y = self._autograd_pair()
        with torch.no_grad():
            output = self._model(image)
        if not isinstance(output, torch.Tensor):
            output = y.detach()
        flat = torch.Size(image.shape[1:] if image.ndim > 1 else image.shape)
        saved = {
            "save_metadata": {
                "plenoptic_version": "2.1.1",
                "torch_version": str(torch.__version__),
                "synthesis_object": "plenoptic.Eigendistortion",
                "refimpl_method": None if result is None else result.method,
            },
            "_loaded": False,
            "_image_shape": flat,
            "_image_flat": x.detach(),
            "_image": image.detach(),
            "_representation_flat": y.detach(),
            "_jacobian": None if self.jacobian is None else self.jacobian.detach(),
            "_eigendistortions": None if result is None else result.eigendistortions.detach(),
            "_eigenvalues": None if result is None else result.eigenvalues.detach(),
            "_eigenindex": None if result is None else result.eigenindex.detach(),
            "_model": (_model_name(self._model), ("_image",), output.detach()),
        }
        folder = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            torch.save(saved, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load(
        self,
        file_path: str,
        map_location: Any = None,
        raise_on_checks: bool = True,
        tensor_equality_atol: float = 1e-8,
        tensor_equality_rtol: float = 1e-5,
        **pickle_load_args: Any,
    ) -> None:
        """Load a file written by :meth:`save`, or by plenoptic's ``Eigendistortion.save``
        (a ``.pt`` file, read with ``torch.load(weights_only=True)``: nothing in it runs),
        into this just-initialized object.

        Raises ValueError when the file was made from another image or another model (its
        output at the image differs); ``raise_on_checks=False`` makes those warnings. The
        tolerances must be finite and >= 0. A damaged or crafted file raises ValueError
        naming the path, and nothing is loaded.
        Arrays are loaded onto the image's device (``map_location`` must be None or name
        that device). No file is unpickled freely: ``pickle_load_args`` are refused.
        """
        if pickle_load_args:
            raise TypeError(
                f"load got unexpected arguments {sorted(pickle_load_args)}: an .npz file is "
                "not a pickle, and a .pt file is read with torch.load(weights_only=True) only"
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
        if _is_torch_archive(file_path):
            if self.eigenindex is not None:
                raise ValueError(
                    "load can only be called with a just-initialized Eigendistortion object"
                )
            self._load_plenoptic(
                file_path, raise_on_checks, tensor_equality_atol, tensor_equality_rtol
            )
            return
        self._ref.load(
            file_path,
            raise_on_checks=raise_on_checks,
            atol=tensor_equality_atol,
            rtol=tensor_equality_rtol,
        )

    def _load_plenoptic(self, path: Any, raise_on_checks: bool, atol: float, rtol: float) -> None:
        """Results from a file written by plenoptic's ``Eigendistortion.save``, read with
        ``torch.load(weights_only=True)`` (tensors, sizes, strings, tuples: no code runs).
        plenoptic's checks and wording: the image (dtype and shape always, values within the
        tolerances) and the model's output at it (shape always, values). The pairs are put in
        decreasing order of eigenvalue (plenoptic's bottom block is ascending) with
        ``eigenindex`` increasing; ``method`` is read from ``eigenindex`` (``exact``: all n;
        ``power``: a bottom block; else ``randomized_svd``); ``convergence`` is empty."""
        image = self.image
        try:
            saved = torch.load(path, map_location=image.device, weights_only=True)
        except Exception as exc:  # torch's UnpicklingError for anything but plain data
            raise ValueError(
                f"cannot load {str(path)!r}: a torch archive that torch.load(weights_only=True) "
                f"refuses ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from None
        name = saved.get("save_metadata", {}) if isinstance(saved, dict) else {}
        name = name.get("synthesis_object") if isinstance(name, dict) else None
        if name != "plenoptic.Eigendistortion":
            raise ValueError(
                f"Saved object was a {name}, but initialized object is "
                f"plenoptic.Eigendistortion (file {str(path)!r})"
            )
        try:
            img, model_entry = saved["_image"], saved["_model"]
            output = model_entry[2]
            vectors, values = saved["_eigendistortions"], saved["_eigenvalues"]
            index, jacobian = saved["_eigenindex"], saved.get("_jacobian")
            if not all(isinstance(t, torch.Tensor) for t in (img, output)):
                raise TypeError("the image or the model output is not a tensor")
            method = saved["save_metadata"].get("refimpl_method")
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(
                f"cannot load {str(path)!r}: not an Eigendistortion file of plenoptic ({exc})"
            ) from None

        def check(ok: bool, message: str, hard: bool = False) -> None:
            if ok:
                return
            message = f"{message} (file {str(path)!r})"
            if raise_on_checks or hard:
                raise ValueError(message)
            warnings.warn(message, UserWarning, stacklevel=4)

        check(
            img.dtype == image.dtype,
            f"Saved and initialized attribute image have different dtype: {img.dtype} and "
            f"{image.dtype}",
            hard=True,
        )
        check(
            img.shape == image.shape,
            f"Saved and initialized attribute image have different shape: {tuple(img.shape)} "
            f"and {tuple(image.shape)}",
            hard=True,
        )
        check(
            torch.allclose(img, image, atol=atol, rtol=rtol),
            f"Saved and initialized attribute image have different values (atol={atol:g}, "
            f"rtol={rtol:g}): the file was made from another image",
        )
        with torch.no_grad():
            ours = self._model(image)
        ours = ours if isinstance(ours, torch.Tensor) else self._representation_flat.detach()
        check(
            output.shape == ours.shape,
            f"Saved and initialized model output have different shape: {tuple(output.shape)} "
            f"and {tuple(ours.shape)}",
            hard=True,
        )
        check(
            torch.allclose(output.to(ours.dtype), ours, atol=atol, rtol=rtol),
            f"Saved and initialized model output have different values (atol={atol:g}, "
            f"rtol={rtol:g}): the file was made from another model (its output at the image "
            "differs)",
        )
        saved_name, name = str(model_entry[0]), _model_name(self._model)
        check(  # plenoptic compares the last part only ("__main__.Gaussian" is a Gaussian)
            saved_name.split(".")[-1] == name.split(".")[-1],
            f"Saved and initialized model have different names! {saved_name} and {name}",
        )
        if vectors is None and values is None and index is None:  # saved before synthesize
            self._ref.restore(None, None)
            return
        if not all(isinstance(t, torch.Tensor) for t in (vectors, values, index)):
            raise ValueError(f"cannot load {str(path)!r}: results that are not tensors")
        values = values.reshape(-1).to(image.dtype)  # 0-d in plenoptic for randomized_svd k=1
        n = self._ref.n_pixels
        order = torch.argsort(values, descending=True, stable=True)
        index = torch.sort(index.reshape(-1).to(device=image.device, dtype=torch.int64)).values
        shape = image.shape[1:] if image.ndim > 1 else image.shape
        vectors = vectors.to(image.dtype).reshape(len(values), *shape)[order]
        if method not in METHODS:  # plenoptic's files do not say: eigenindex does
            if len(index) == n:
                method = "exact"
            elif len(index) > 1 and int(index[-1]) == n - 1 and int(index[0]) == 0:
                method = "power"
            else:
                method = "randomized_svd"
        result = EigendistortionResult(method, vectors, values[order].clamp(min=0), index, {})
        if jacobian is not None and not isinstance(jacobian, torch.Tensor):
            jacobian = None
        try:
            self._ref.restore(result, None if jacobian is None else jacobian.to(image.dtype))
        except ValueError as exc:
            raise ValueError(f"cannot load {str(path)!r}: {exc}") from None


_register_with_plenoptic()
