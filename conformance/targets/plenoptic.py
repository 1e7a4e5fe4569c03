"""The plenoptic column: ``plenoptic.Eigendistortion`` on plenoptic's own models (seed 004)."""

from __future__ import annotations

import warnings

from conformance.targets.base import EigendistortionRun, OriginalTarget
from conformance.targets.torch import _torch_np


class Plenoptic(OriginalTarget):
    """plenoptic: ``plenoptic.Eigendistortion`` on its own models."""

    module = "plenoptic"

    def eigendistortion(self, image, model, dtype="float64"):
        import plenoptic as po
        import torch

        dt = getattr(torch, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eig = po.Eigendistortion(torch.as_tensor(image, dtype=dt), model.plenoptic(dt))
        return EigendistortionRun("plenoptic", eig, _torch_np, plenoptic=True)
