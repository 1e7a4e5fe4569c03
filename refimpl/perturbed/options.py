"""The options of a perturbed optimizer, validated once, when they are built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from refimpl.parallel import check_executor
from refimpl.perturbed.noise import Noise, get_noise
from refimpl.validation import check_bool, check_choice, check_int, check_real, check_rng

__all__ = ["SAMPLINGS", "PerturbedOptions"]

#: how the N samples are drawn (``refimpl.perturbed.noise``)
SAMPLINGS = ("mc", "antithetic", "qmc")


@dataclass(frozen=True)
class PerturbedOptions:
    r"""``num_samples`` N >= 1; ``sigma`` > 0 (finite; at each call ``max|theta| + 40 sigma``
    must also be finite in theta's dtype, see ``refimpl.validation.check_noise_scale``);
    ``noise``: "normal", "gumbel" or a :class:`~refimpl.perturbed.noise.Noise`; ``batched``:
    theta is ``(batch, *event)`` (rank >= 2) with independent noise per example, else one
    example (rank >= 1); ``rng``: None, an int seed, a native generator or a
    ``backends.Rng``; ``chunk_size``: samples per call of ``func`` (None: sized from a
    memory budget; results do not depend on it); ``sampling``: "mc", "antithetic" or "qmc";
    ``baseline``: subtract :math:`y^*(\theta)` in the derivative estimates; ``progress``: a
    progress bar (None: once a call has run 2 seconds); ``executor``: None (run here) or a
    ``concurrent.futures.Executor`` running the tasks of a keyed stream (``rng`` a
    ``numpy.random.SeedSequence`` or None)."""

    num_samples: int = 1000
    sigma: float = 0.05
    noise: Noise | str = "normal"
    batched: bool = True
    rng: Any = None
    chunk_size: int | None = None
    sampling: str = "mc"
    baseline: bool = True
    progress: bool | None = None
    executor: Any = None

    def __post_init__(self) -> None:
        checked = dict(
            num_samples=check_int("num_samples", self.num_samples, low=1),
            sigma=check_real("sigma", self.sigma, low=0.0, low_open=True),
            noise=get_noise(self.noise),
            batched=check_bool("batched", self.batched),
            rng=check_rng(self.rng),
            chunk_size=None
            if self.chunk_size is None
            else check_int("chunk_size", self.chunk_size, low=1),
            sampling=check_choice("sampling", self.sampling, SAMPLINGS),
            baseline=check_bool("baseline", self.baseline),
            progress=check_bool("progress", self.progress, optional=True),
            executor=check_executor(self.executor),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def without_executor(self) -> PerturbedOptions:
        """These options with ``executor=None`` (what a task carries to a worker)."""
        return dataclasses.replace(self, executor=None)
