"""The numpy backend: namespace ``array_api_compat.numpy``, one device ``"cpu"``, random
numbers from ``numpy.random.Generator`` (:class:`backends.base.HostRng`)."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from backends.base import Backend

__all__ = ["NumpyBackend"]


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
        return array_api_compat.is_numpy_namespace(xp)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x, copy=True)
