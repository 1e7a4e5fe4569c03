r"""Noise distributions of the perturbed optimizers and their score functions.

A noise has a density :math:`\mu(z) \propto e^{-\nu(z)}`, i.i.d. over coordinates. The
gradient estimator of Berthet et al. (2020, Prop. 3.1) needs :math:`\nabla\nu(Z)` next to
every draw :math:`Z`, so each sampler returns the pair ``(z, grad_nu(z))``:

=========  ==========================  ==========================  ==========================
noise      :math:`\nu(z)`              :math:`\nabla\nu(z)`        drawn as
=========  ==========================  ==========================  ==========================
normal     :math:`z^2 / 2`             :math:`z`                   ``rng.normal``
gumbel     :math:`z + e^{-z}`          :math:`1 - e^{-z}`          :math:`E = -\log U`,
                                                                   :math:`Z = -\log E`,
                                                                   :math:`\nabla\nu = 1 - E`
=========  ==========================  ==========================  ==========================

For Gumbel, :math:`e^{-Z} = E \sim \mathrm{Exp}(1)`, so the score costs no ``exp``. U is
mapped into :math:`[\mathrm{tiny}, 1 - \epsilon)` of its dtype first (as
``torch.distributions.Gumbel`` does), so E > 0 and Z are finite.

Both scores have mean zero, :math:`E[\nabla\nu(Z)] = -\int \nabla\mu = 0` (for Gumbel,
:math:`E[1 - E] = 0` since E has mean 1): the reason a baseline may be subtracted.

Three ways to draw ``n`` samples (``sampling``): ``sample`` (i.i.d., Monte Carlo),
``antithetic`` (pairs :math:`z, -z` for the normal; :math:`U, 1 - U` for Gumbel, interleaved
as samples 2k and 2k+1), and ``from_sobol`` (randomised quasi-Monte Carlo points through
the inverse CDF: :math:`\Phi^{-1}(u)` for the normal, :math:`-\log(-\log u)` for Gumbel).
Every sample has the exact noise marginal in all three, which is all unbiasedness needs.
"""

from __future__ import annotations

from typing import Any

from backends import namespace_and_device

__all__ = ["NOISES", "Gumbel", "Noise", "Normal", "get_noise"]


def _interleave(xp: Any, a: Any, b: Any) -> Any:
    """Rows a[0], b[0], a[1], b[1], ... (the antithetic pairs stay neighbours)."""
    return xp.reshape(xp.stack((a, b), axis=1), (2 * a.shape[0], *a.shape[1:]))


class Noise:
    """Base class: subclasses give ``name`` and the three samplers."""

    name = ""

    def grad_nu(self, z: Any) -> Any:
        raise NotImplementedError

    def sample(self, rng: Any, shape: tuple[int, ...], dtype: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def antithetic(self, rng: Any, shape: tuple[int, ...], dtype: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def from_sobol(self, stream: Any, shape: tuple[int, ...], dtype: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normal(Noise):
    r"""Standard normal: :math:`\nu(z) = z^2/2`, :math:`\nabla\nu(z) = z`."""

    name = "normal"

    def grad_nu(self, z: Any) -> Any:
        return z

    def sample(self, rng, shape, dtype):
        z = rng.normal(shape, dtype=dtype)
        return z, z

    def antithetic(self, rng, shape, dtype):
        half = rng.normal((shape[0] // 2, *shape[1:]), dtype=dtype)
        z = _interleave(rng.xp, half, -half)
        return z, z

    def from_sobol(self, stream, shape, dtype):
        z = stream.rng.xp.reshape(stream.normal(shape[0], dtype=dtype), shape)
        return z, z


class Gumbel(Noise):
    r"""Standard Gumbel: :math:`\nu(z) = z + e^{-z}`, :math:`\nabla\nu(z) = 1 - e^{-z}`;
    :math:`Z = -\log(-\log U)`, mean :math:`\gamma \approx 0.5772`."""

    name = "gumbel"

    def grad_nu(self, z: Any) -> Any:
        xp, _ = namespace_and_device(z)
        return 1.0 - xp.exp(-z)

    @staticmethod
    def _open_unit(xp: Any, u: Any) -> Any:
        """U in [0, 1] mapped affinely onto [tiny, 1 - eps]: both logs below stay finite
        (a float32 Sobol point may round to 1; the map sends 1 to 1 - eps)."""
        info = xp.finfo(u.dtype)
        lo, hi = float(info.smallest_normal), 1.0 - float(info.eps)
        return lo + u * (hi - lo)

    @staticmethod
    def _from_exp(xp: Any, e: Any) -> tuple[Any, Any]:
        """Z = -log E and grad_nu(Z) = 1 - E for E ~ Exp(1)."""
        return -xp.log(e), 1.0 - e

    @staticmethod
    def _uniform(rng: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        """U on [tiny, 1 - eps] drawn directly (the affine map of :meth:`_open_unit` done by
        the generator)."""
        info = rng.xp.finfo(dtype)
        lo, hi = float(info.smallest_normal), 1.0 - float(info.eps)
        return rng.uniform(shape, dtype=dtype, low=lo, high=hi)

    def sample(self, rng, shape, dtype):
        xp = rng.xp
        u = self._uniform(rng, shape, dtype)
        return self._from_exp(xp, -xp.log(u))

    def antithetic(self, rng, shape, dtype):
        xp = rng.xp
        u = self._uniform(rng, (shape[0] // 2, *shape[1:]), dtype)
        e = _interleave(xp, -xp.log(u), -xp.log1p(-u))  # E(U) and E(1 - U)
        return self._from_exp(xp, e)

    def from_sobol(self, stream, shape, dtype):
        xp = stream.rng.xp
        u = self._open_unit(xp, xp.reshape(stream.uniform(shape[0], dtype=dtype), shape))
        return self._from_exp(xp, -xp.log(u))


NOISES: dict[str, Noise] = {"normal": Normal(), "gumbel": Gumbel()}


def get_noise(noise: Any) -> Noise:
    """A :class:`Noise` from its name (``"normal"``, ``"gumbel"``) or an instance."""
    if isinstance(noise, Noise):
        return noise
    if isinstance(noise, str) and noise in NOISES:
        return NOISES[noise]
    raise ValueError(f"noise must be one of {', '.join(map(repr, NOISES))}, got {noise!r}")
