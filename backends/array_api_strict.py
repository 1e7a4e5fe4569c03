"""The ``array_api_strict`` backend: only the standard, pinned to the 2024.12 revision.

Its non-default devices (``device1``) stand in for a GPU: mixing devices raises and hidden
copies to numpy fail, so the test suite runs on it to prove that ``refimpl`` is namespace-
and device-clean. It has no random numbers: draws come from numpy's generator on the host
(:class:`backends.base.HostRng`) and are copied to the device.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from backends.base import Backend

__all__ = ["StrictBackend"]


class StrictBackend(Backend):
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
        return array_api_compat.is_array_api_strict_namespace(xp)

    def to_numpy(self, x: Any) -> np.ndarray:
        host = x.to_device(self.xp.__array_namespace_info__().default_device())
        return np.array(np.from_dlpack(host), copy=True)
