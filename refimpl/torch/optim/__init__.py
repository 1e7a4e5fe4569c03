"""``torch.optim.Optimizer`` front ends over ``refimpl.optim``: the whole of
``rai_toolbox.optim`` 0.2.1 with its documented signatures, so code switches by changing an
import (``from refimpl.torch.optim import L1qFrankWolfe``).

* ``optimizer``: ``ParamTransformingOptimizer`` (an inner torch optimizer wrapped by in-place
  pre- and post-step transforms of each parameter's batch view) and
  ``ChainedParamTransformingOptimizer``; the checks every front end shares.
* ``lp_space``: ``SignedGradientOptim``, ``L1NormedGradientOptim``, ``L2NormedGradientOptim``,
  ``L2ProjectedOptim``, ``LinfProjectedOptim``, ``L1qNormedGradientOptim``.
* ``misc``: ``TopQGradientOptimizer``, ``ClampedGradientOptimizer``,
  ``ClampedParameterOptimizer``.
* ``frank_wolfe``: ``FrankWolfe``, ``L1FrankWolfe``, ``L2FrankWolfe``, ``LinfFrankWolfe``,
  ``L1qFrankWolfe``.
* ``inplace``: the in-place forms of the row-wise transforms that these classes apply.

The transforms are the array-API functions of ``refimpl.optim`` (the code that runs on numpy
and array_api_strict), applied in place with the documented library's arithmetic: on
float32/float64 gradients without ties at the top-q cut-off, parameters, transformed gradients
and generator states are bit-identical to rai_toolbox 0.2.1 step after step
(``tests/torch/test_optim.py``, ``tests/torch/test_transforming.py``).

Speed: the transforms write into the tensors (``inplace``: the documented library's passes,
one fused norm per row, and the guarantees of ``refimpl.optim`` decided from the smallest
and largest norm, so that only rows whose norm overflowed or underflowed are recomputed);
options are validated again at ``step`` only for groups changed since their last
validation. Top-q selects with ``backends.ops.kth_largest`` (an O(D) ``numpy.partition`` on a
zero-copy view of CPU tensors, ``torch.kthvalue`` elsewhere) instead of ``torch.topk``, and
``L1FrankWolfe`` adds its single non-zero LMO entry per row with ``scatter_add_`` instead of a
dense update.

Differences (fixes; the README lists them): options are validated on every entry (also groups
added later, loaded state dicts, and values edited in place, checked at ``step``); ``epsilon``
is a per-group option of every ball-constrained class and must be finite and ``>= 0``;
generators in group dicts are consumed once; sparse gradients, foreign state dicts and
non-tensor parameters raise clear errors; L1FrankWolfe works on rows of any dimension; a zero
gradient never turns float16 parameters into NaN; ``lr = 0`` never divides by zero; NaN
gradients propagate instead of being silently zeroed; top-q ties keep the lowest indices.
"""

from refimpl.torch.optim.frank_wolfe import (
    FrankWolfe,
    L1FrankWolfe,
    L1qFrankWolfe,
    L2FrankWolfe,
    LinfFrankWolfe,
)
from refimpl.torch.optim.lp_space import (
    L1NormedGradientOptim,
    L1qNormedGradientOptim,
    L2NormedGradientOptim,
    L2ProjectedOptim,
    LinfProjectedOptim,
    SignedGradientOptim,
)
from refimpl.torch.optim.misc import (
    ClampedGradientOptimizer,
    ClampedParameterOptimizer,
    TopQGradientOptimizer,
)
from refimpl.torch.optim.optimizer import (
    ChainedParamTransformingOptimizer,
    ParamTransformingOptimizer,
)

__all__ = [
    "ChainedParamTransformingOptimizer",
    "ClampedGradientOptimizer",
    "ClampedParameterOptimizer",
    "FrankWolfe",
    "L1FrankWolfe",
    "L1NormedGradientOptim",
    "L1qFrankWolfe",
    "L1qNormedGradientOptim",
    "L2FrankWolfe",
    "L2NormedGradientOptim",
    "L2ProjectedOptim",
    "LinfFrankWolfe",
    "LinfProjectedOptim",
    "ParamTransformingOptimizer",
    "SignedGradientOptim",
    "TopQGradientOptimizer",
]
