r"""Eigendistortions of a model's Fisher matrix (plenoptic's ``Eigendistortion``).

:math:`F = J^\top J` at an image; its top eigenvectors are the distortions the model finds
most visible, its bottom ones the least visible (Berardino et al. 2017).

* :class:`Eigendistortion`: ``synthesize(method="power" | "exact" | "randomized_svd" |
  "eigsh", k=1, ...)``, ``eigendistortions``, ``eigenvalues``, ``eigenindex``,
  ``convergence``, ``save``/``load`` (npz plus JSON metadata);
* :mod:`refimpl.eigendistortion.solvers`: the eigensolvers on any operator given by products
  (power / orthogonal iteration, randomized SVD, Krylov-Schur Lanczos, ARPACK dispatch);
* :func:`display_eigendistortions`, :func:`plot_eigenvalues` (matplotlib, the ``plot``
  extra).

The torch front end with plenoptic's signature is :class:`refimpl.torch.Eigendistortion`.
See ``docs/eigendistortion.md``.
"""

from refimpl.eigendistortion.eigendistortion import Eigendistortion
from refimpl.eigendistortion.options import (
    METHODS,
    EigendistortionOptions,
    EigendistortionResult,
)
from refimpl.eigendistortion.plot import display_eigendistortions, plot_eigenvalues

__all__ = [
    "METHODS",
    "Eigendistortion",
    "EigendistortionOptions",
    "EigendistortionResult",
    "display_eigendistortions",
    "plot_eigenvalues",
]
