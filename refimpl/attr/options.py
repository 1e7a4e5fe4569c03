"""The options of the noise tunnel, validated once, when a call starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refimpl.validation import check_bool, check_choice, check_int, check_real

__all__ = ["NT_TYPES", "NoiseTunnelOptions"]

#: the statistics of the sampled attributions (``refimpl.attr.moments``)
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


@dataclass(frozen=True)
class NoiseTunnelOptions:
    """``nt_type`` in :data:`NT_TYPES` (case-sensitive); ``nt_samples`` n >= 1;
    ``nt_samples_batch_size`` >= 1 samples per call of the wrapped method (None: all n);
    ``stdevs``: the noise's standard deviation(s), finite and >= 0, one number for all inputs
    or a tuple of one per input (with ``relative``, noise *levels*: a fraction of each
    example's range; at each call ``max|x| + 40 sigma`` must also be finite in each input's
    dtype, see ``refimpl.validation.check_noise_scale``); ``draw_baseline_from_distrib``;
    ``relative``; ``progress`` (None: a bar for long runs only)."""

    nt_type: str = "smoothgrad"
    nt_samples: int = 5
    nt_samples_batch_size: int | None = None
    stdevs: float | tuple[float, ...] = 1.0
    draw_baseline_from_distrib: bool = False
    relative: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        n = check_int("nt_samples", self.nt_samples, low=1)
        bs = self.nt_samples_batch_size
        stdevs: Any = self.stdevs
        if isinstance(stdevs, tuple | list):
            stdevs = tuple(_stdev(s, f"stdevs[{i}]") for i, s in enumerate(stdevs))
        else:
            stdevs = _stdev(stdevs, "stdevs")
        checked = dict(
            nt_type=check_choice("nt_type", self.nt_type, NT_TYPES),
            nt_samples=n,
            nt_samples_batch_size=None
            if bs is None
            else min(n, check_int("nt_samples_batch_size", bs, low=1)),
            stdevs=stdevs,
            draw_baseline_from_distrib=check_bool(
                "draw_baseline_from_distrib", self.draw_baseline_from_distrib
            ),
            relative=check_bool("relative", self.relative),
            progress=check_bool("progress", self.progress, optional=True),
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def chunks(self) -> list[int]:
        """Samples per call of the wrapped method, in order (the last may be smaller)."""
        return self.chunks_of(self.nt_samples)

    def chunks_of(self, m: int) -> list[int]:
        """The chunks of ``m`` consecutive samples (a task's): ``nt_samples_batch_size``
        each, the last what remains."""
        bs = m if self.nt_samples_batch_size is None else min(m, self.nt_samples_batch_size)
        return [bs] * (m // bs) + ([m % bs] if m % bs else [])

    def stdevs_for(self, n_inputs: int) -> tuple[float, ...]:
        """One standard deviation per input."""
        if not isinstance(self.stdevs, tuple):
            return (self.stdevs,) * n_inputs
        if len(self.stdevs) != n_inputs:
            raise ValueError(
                f"stdevs has {len(self.stdevs)} values but there are {n_inputs} input array(s); "
                "give one number for all inputs or one per input"
            )
        return self.stdevs


def _stdev(value: Any, name: str) -> float:
    return check_real(name, value, low=0.0)
