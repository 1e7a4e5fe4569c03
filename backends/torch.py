"""The torch backend: namespace ``array_api_compat.torch``, torch devices, and
``torch.Generator`` random numbers drawn with the calls torch code itself makes.

An int seed ``s`` means ``torch.Generator(device).manual_seed(s)``, what the documented torch
libraries use, so their documented random values are reproduced digit for digit.
``default_generator(device)`` is torch's own generator of a device (the one
``torch.manual_seed`` seeds), for front ends whose documented default is that generator.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from backends.base import Backend, BackendUnavailableError, Rng, fresh_seed

__all__ = ["TorchBackend", "TorchRng", "default_generator"]


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
        return array_api_compat.is_torch_namespace(xp)

    def _from_numpy(self, a: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.array(a, order="C", copy=True))

    generator_name = "torch.Generator"

    def is_generator(self, obj: Any) -> bool:
        t = type(obj)
        return t.__module__.startswith("torch") and t.__name__ == "Generator"

    def wrap_generator(self, generator: Any, device: Any) -> Rng:
        return TorchRng(generator, self, device)

    def seeded_rng(self, seed: int | None, device: Any) -> Rng:
        """``torch.Generator(device).manual_seed(seed)``: what the documented torch code
        uses, so documented random values are reproduced digit for digit."""
        import torch

        g = torch.Generator(device=device)
        g.manual_seed(fresh_seed() if seed is None else seed)
        return TorchRng(g, self, device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy().copy()


def default_generator(device: Any) -> Any:
    """torch's default generator of ``device`` (the one ``torch.manual_seed`` seeds)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return torch.cuda.default_generators[index]
    return torch.default_generator


class TorchRng(Rng):
    """``torch.Generator``: the same calls, shapes and order as torch code would make.

    ``uniform(low, high)`` is ``Tensor.uniform_(low, high, generator=g)`` and ``normal`` is
    one ``torch.randn`` call on the whole shape (bit-identical to ``normal_`` on that block).
    Draws happen on ``g.device`` and are then moved to the target device.
    """

    def bind(self, backend: Backend, device: Any) -> Rng:
        if backend.name != "torch":
            raise TypeError(f"a torch.Generator cannot draw for the backend {backend.name!r}")
        return TorchRng(self.generator, backend, device)

    def _uniform(self, shape, name, low, high, device):
        import torch

        g = self.generator
        u = torch.empty(shape, dtype=getattr(torch, name), device=g.device)
        u.uniform_(low, high, generator=g)
        return u.to(device)

    def _normal01(self, shape, name, device):
        import torch

        g = self.generator
        z = torch.randn(shape, generator=g, dtype=getattr(torch, name), device=g.device)
        return z.to(device)

    def _integers(self, low, high, shape, device):
        import torch

        g = self.generator
        i = torch.randint(low, high, shape, generator=g, dtype=torch.int64, device=g.device)
        return i.to(device)
