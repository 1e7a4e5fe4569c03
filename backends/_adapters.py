"""One adapter per array library: namespace, devices, conversions and RNG.

An adapter is the only object that knows which library it wraps. ``refimpl`` code never
sees the library, only ``adapter.xp`` (an array-API namespace) and the arrays it makes.
Libraries are imported lazily, on first use of ``.xp``, so a missing optional library
costs nothing until somebody asks for it.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

FLOAT_DTYPES = ("float16", "float32", "float64")


class BackendUnavailableError(ImportError):
    """The library behind a backend cannot be imported, or has no device to run on."""


class Backend:
    """Base adapter. Subclasses set ``name``, ``module`` and ``package``."""

    name: str = ""
    #: the import name of the array library
    module: str = ""
    #: what to ``pip install`` when the library is missing
    package: str = ""
    #: the extra of ``pyproject.toml`` that installs it (None: a core dependency)
    extra: str | None = None

    def __init__(self) -> None:
        self._xp: Any = None

    # -- availability -----------------------------------------------------------------
    def _import(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            via = f" (or the extra refimpl[{self.extra}])" if self.extra else ""
            raise BackendUnavailableError(
                f"backend {self.name!r} needs the package {self.package!r}, which is not "
                f"installed: pip install {self.package!r}{via}"
            ) from exc

    def unavailable_reason(self) -> str | None:
        """None when usable, else a sentence saying why not."""
        try:
            self._import()
        except BackendUnavailableError as exc:
            return str(exc)
        return None

    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    def require(self) -> Backend:
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(reason)
        return self

    # -- namespace and devices --------------------------------------------------------
    @property
    def xp(self) -> Any:
        if self._xp is None:
            self.require()
            self._xp = self._make_namespace()
        return self._xp

    def _make_namespace(self) -> Any:
        raise NotImplementedError

    @property
    def default_device(self) -> Any:
        return self.xp.__array_namespace_info__().default_device()

    def devices(self) -> list:
        return list(self.xp.__array_namespace_info__().devices())

    def device(self, spec: Any = None) -> Any:
        """Turn a device spec (None, a string, or a device object) into a device object."""
        if spec is None:
            return self.default_device
        return self._device(spec)

    def _device(self, spec: Any) -> Any:
        return spec

    def owns(self, xp: Any) -> bool:
        """Whether ``xp`` (a namespace) is this backend's."""
        raise NotImplementedError

    # -- dtypes and arrays ------------------------------------------------------------
    def dtype(self, spec: Any) -> Any:
        """The namespace's dtype for a name (``"float32"``), a numpy dtype, or a dtype."""
        if isinstance(spec, str) or isinstance(spec, np.dtype) or spec in (float, int):
            name = np.dtype(spec).name
            try:
                return getattr(self.xp, name)
            except AttributeError:
                raise ValueError(f"backend {self.name!r} has no dtype {name!r}") from None
        return spec

    def dtype_name(self, dtype: Any) -> str:
        for name in (
            "float16",
            "bfloat16",
            "float32",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
        ):
            candidate = getattr(self.xp, name, None)
            if candidate is not None and dtype == candidate:
                return name
        for name in ("uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128"):
            candidate = getattr(self.xp, name, None)
            if candidate is not None and dtype == candidate:
                return name
        return str(dtype).rsplit(".", 1)[-1]

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None) -> Any:
        """Array of this backend from a nested sequence, a scalar or a numpy array."""
        dt = None if dtype is None else self.dtype(dtype)
        dev = self.device(device)
        if isinstance(obj, np.ndarray | np.generic):
            obj = self._from_numpy(np.asarray(obj))
        return self.xp.asarray(obj, dtype=dt, device=dev)

    def _from_numpy(self, a: np.ndarray) -> Any:
        return a

    def to_numpy(self, x: Any) -> np.ndarray:
        """A numpy copy of ``x`` (tests and reporting only: it synchronises with the device)."""
        raise NotImplementedError

    def rng(self, seed: Any = None, device: Any = None):
        """An RNG adapter drawing on ``device`` (see ``backends.rng``)."""
        from backends.rng import as_rng

        return as_rng(seed, backend=self, device=self.device(device))

    # -- random numbers: each library's own generators --------------------------------
    #: how errors name this library's generator
    generator_name: str = "generator"

    def is_generator(self, obj: Any) -> bool:
        """Whether ``obj`` is a native generator of this library (never imports it)."""
        return False

    def wrap_generator(self, generator: Any, device: Any) -> Any:
        """An ``Rng`` drawing with this library's native ``generator``."""
        raise NotImplementedError

    def seeded_rng(self, seed: int | None, device: Any) -> Any:
        """An ``Rng`` for an int seed (None: fresh entropy). Default: numpy's generator on
        the host, copied to the device (numpy itself, array_api_strict)."""
        from backends.rng import HostRng

        return HostRng(np.random.default_rng(seed), self, device)

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"
    package = "numpy"

    def _make_namespace(self) -> Any:
        import array_api_compat.numpy as xp

        return xp

    @property
    def default_device(self) -> Any:
        return "cpu"

    def devices(self) -> list:
        return ["cpu"]

    def _device(self, spec: Any) -> Any:
        if spec != "cpu":
            raise ValueError(f"backend 'numpy' has only the device 'cpu', got {spec!r}")
        return spec

    def owns(self, xp: Any) -> bool:
        import array_api_compat

        return array_api_compat.is_numpy_namespace(xp)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x, copy=True)


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    package = "torch"
    extra = "torch"

    def _make_namespace(self) -> Any:
        import array_api_compat.torch as xp

        return xp

    @property
    def default_device(self) -> Any:
        import torch

        return torch.get_default_device()

    def devices(self) -> list:
        import torch

        devs = [torch.device("cpu")]
        if torch.cuda.is_available():
            devs += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        return devs

    def _device(self, spec: Any) -> Any:
        import torch

        dev = torch.device(spec)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"device {spec!r} asked for, but torch sees no CUDA device on this machine"
            )
        return dev

    def owns(self, xp: Any) -> bool:
        import array_api_compat

        return array_api_compat.is_torch_namespace(xp)

    def _from_numpy(self, a: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.array(a, order="C", copy=True))

    generator_name = "torch.Generator"

    def is_generator(self, obj: Any) -> bool:
        t = type(obj)
        return t.__module__.startswith("torch") and t.__name__ == "Generator"

    def wrap_generator(self, generator: Any, device: Any) -> Any:
        from backends.rng import TorchRng

        return TorchRng(generator, self, device)

    def seeded_rng(self, seed: int | None, device: Any) -> Any:
        """``torch.Generator(device).manual_seed(seed)``: what the documented torch code
        uses, so documented random values are reproduced digit for digit."""
        import torch

        from backends.rng import TorchRng, fresh_seed

        g = torch.Generator(device=device)
        g.manual_seed(fresh_seed() if seed is None else seed)
        return TorchRng(g, self, device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy().copy()


class CupyBackend(Backend):
    name = "cupy"
    module = "cupy"
    package = "cupy-cuda12x"
    extra = "cupy"

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is not None:
            return reason
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "backend 'cupy' needs a CUDA GPU, and none is present"
        except Exception as exc:  # cupy raises CUDARuntimeError without a driver
            return f"backend 'cupy' needs a CUDA GPU, and none is usable ({exc})"
        return None

    def _make_namespace(self) -> Any:
        import array_api_compat.cupy as xp

        return xp

    @property
    def default_device(self) -> Any:
        import cupy

        return cupy.cuda.Device()

    def devices(self) -> list:
        import cupy

        return [cupy.cuda.Device(i) for i in range(cupy.cuda.runtime.getDeviceCount())]

    def _device(self, spec: Any) -> Any:
        import cupy

        if isinstance(spec, int):
            return cupy.cuda.Device(spec)
        if isinstance(spec, str):
            return cupy.cuda.Device(int(spec.split(":")[1]) if ":" in spec else 0)
        return spec

    def owns(self, xp: Any) -> bool:
        import array_api_compat

        return array_api_compat.is_cupy_namespace(xp)

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None) -> Any:
        dt = None if dtype is None else self.dtype(dtype)
        with self.device(device):
            return self.xp.asarray(obj, dtype=dt)

    generator_name = "cupy Generator"

    def is_generator(self, obj: Any) -> bool:
        t = type(obj)
        return t.__module__.startswith("cupy") and t.__name__ == "Generator"

    def wrap_generator(self, generator: Any, device: Any) -> Any:
        from backends.rng import CupyRng

        return CupyRng(generator, self, device)

    def seeded_rng(self, seed: int | None, device: Any) -> Any:
        import cupy

        from backends.rng import CupyRng

        with device:
            return CupyRng(cupy.random.default_rng(seed), self, device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.get()


class StrictBackend(Backend):
    """``array_api_strict``: only the standard, pinned to the 2024.12 revision.

    Its non-default devices (``device1``) stand in for a GPU: mixing devices raises and
    hidden copies to numpy fail, so the test suite runs on it to prove that ``refimpl``
    is namespace- and device-clean.
    """

    name = "array_api_strict"
    module = "array_api_strict"
    package = "array-api-strict"
    extra = "test"
    api_version = "2024.12"

    def _make_namespace(self) -> Any:
        import array_api_strict as xp

        xp.set_array_api_strict_flags(api_version=self.api_version)
        return xp

    def _device(self, spec: Any) -> Any:
        if isinstance(spec, str):
            return self.xp.Device(spec)
        return spec

    def owns(self, xp: Any) -> bool:
        import array_api_compat

        return array_api_compat.is_array_api_strict_namespace(xp)

    def to_numpy(self, x: Any) -> np.ndarray:
        host = x.to_device(self.xp.__array_namespace_info__().default_device())
        return np.array(np.from_dlpack(host), copy=True)


from backends.jax import JaxBackend  # noqa: E402  (one module per library; it needs Backend)

ADAPTERS: dict[str, Backend] = {
    b.name: b
    for b in (NumpyBackend(), TorchBackend(), CupyBackend(), StrictBackend(), JaxBackend())
}
ALIASES = {"strict": "array_api_strict", "array-api-strict": "array_api_strict", "np": "numpy"}
