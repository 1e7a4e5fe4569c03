"""The cupy backend (a CUDA GPU): namespace ``array_api_compat.cupy``, cupy devices, and
``cupy.random.Generator`` random numbers. Untested on machines without a GPU: there it is
listed as unavailable, with the reason."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from backends.base import Backend, Rng

__all__ = ["CupyBackend", "CupyRng"]


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
        return array_api_compat.is_cupy_namespace(xp)

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None) -> Any:
        dt = None if dtype is None else self.dtype(dtype)
        with self.device(device):
            return self.xp.asarray(obj, dtype=dt)

    generator_name = "cupy Generator"

    def is_generator(self, obj: Any) -> bool:
        t = type(obj)
        return t.__module__.startswith("cupy") and t.__name__ == "Generator"

    def wrap_generator(self, generator: Any, device: Any) -> Rng:
        return CupyRng(generator, self, device)

    def seeded_rng(self, seed: int | None, device: Any) -> Rng:
        import cupy

        with device:
            return CupyRng(cupy.random.default_rng(seed), self, device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.get()


class CupyRng(Rng):
    """cupy ``Generator`` (drawn in float32 or float64 on the device, then rounded)."""

    def bind(self, backend: Backend, device: Any) -> Rng:
        if backend.name != "cupy":
            raise TypeError(f"a cupy Generator cannot draw for the backend {backend.name!r}")
        return CupyRng(self.generator, backend, device)

    def _uniform(self, shape, name, low, high, device):
        import cupy

        draw = "float64" if name == "float64" else "float32"
        with device:
            u = self.generator.random(shape, dtype=draw)
            if (low, high) != (0.0, 1.0):
                u = u * cupy.asarray(high - low, dtype=draw) + cupy.asarray(low, dtype=draw)
            return u.astype(name, copy=False)

    def _normal01(self, shape, name, device):
        draw = "float64" if name == "float64" else "float32"
        with device:
            return self.generator.standard_normal(shape, dtype=draw).astype(name, copy=False)

    def _integers(self, low, high, shape, device):
        import cupy

        with device:
            return self.generator.integers(low, high, size=shape, dtype=cupy.int64)
