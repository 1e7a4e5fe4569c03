"""The captum column: ``captum.attr.NoiseTunnel`` around captum's attribution methods
(seed 003)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from conformance.targets.base import NoiseTunnelRun, OriginalTarget
from conformance.targets.torch import _torch_np


class Captum(OriginalTarget):
    """captum: ``captum.attr.NoiseTunnel`` around its attribution methods."""

    module = "captum"

    def asarray(self, obj: Any, dtype: str = "float32") -> Any:
        import torch

        return torch.tensor(np.asarray(obj), dtype=getattr(torch, dtype))

    def _nt(self, method: str, model: Any, **kw: Any) -> NoiseTunnelRun:
        import captum.attr as ca

        warnings.filterwarnings("ignore", module="captum")
        nt = ca.NoiseTunnel(getattr(ca, method)(model.torch(), **kw))
        return NoiseTunnelRun(
            "captum", nt, self.asarray, _torch_np, True, native_torch=True, wrappable=False
        )

    def noise_tunnel(self, method, model, **method_kw):
        return self._nt(method, model, **method_kw)

    def captum_noise_tunnel(self, method, model):
        return self._nt(method, model)
