"""The rai_toolbox column: ``rai_toolbox.perturbations`` and ``rai_toolbox.optim`` (seeds 000
and 001), through the torch API that the front end mirrors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from conformance.targets.base import OriginalTarget
from conformance.targets.torch import _torch_np, _TorchAPI


class RaiToolbox(_TorchAPI, OriginalTarget):
    """rai-toolbox: ``rai_toolbox.perturbations`` and ``rai_toolbox.optim``."""

    module = "rai_toolbox"

    def __init__(self) -> None:
        OriginalTarget.__init__(self)

    def _perturbations(self) -> Any:
        import rai_toolbox.perturbations as rp

        return rp

    def _optim(self) -> Any:
        import rai_toolbox.optim as ro

        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        return ro

    def assert_native(self, native: Any, shape: tuple[int, ...], dtype: str = "float32") -> None:
        import torch

        assert tuple(native.shape) == shape, (
            f"delta shape {tuple(native.shape)}, documented {shape}"
        )
        assert native.dtype == getattr(torch, dtype) and native.requires_grad

    def top_q_gradient(self, grad, q, *, param_ndim):
        import torch

        x = torch.ones(np.asarray(grad).shape, requires_grad=True)
        opt = self._optim().TopQGradientOptimizer(params=[x], lr=1.0, q=q, param_ndim=param_ndim)
        x.backward(gradient=torch.tensor(grad))
        opt.step()
        return _torch_np(x.grad)
