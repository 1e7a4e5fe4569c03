"""The conformance plugin of my_port: one Target, registered under the name ``my_port``.

Run the whole suite against it (from the repository root)::

    python -m conformance --plugin examples.my_port.conformance --target my_port

Operations the port lacks are left to the base class, which raises ``NotSupported``: those
cells are SKIP with the operation named.
"""

from __future__ import annotations

import numpy as np

import examples.my_port as my_port
from conformance import AdditiveRun, Target, register_target

SAMPLERS = {"l2": my_port.uniform_like_l2_n_ball, "linf": my_port.uniform_like_linf_n_ball}


class MyPort(Target):
    packages = ("numpy",)

    def sample_ball(self, kind, x, *, epsilon, param_ndim):
        if kind not in SAMPLERS:
            raise self.not_supported(f"sample_ball({kind!r})", f"my_port has no {kind} sampler")
        x = np.asarray(x, dtype=np.float32)
        return SAMPLERS[kind](x, epsilon=epsilon, param_ndim=param_ndim, rng=0)

    def additive_perturbation(self, data, *, delta_ndim, seed, reduction, delta=None, init="l1"):
        data = np.asarray(data, dtype=np.float32)
        if delta is None:  # a fresh draw needs the init sampler
            if init not in SAMPLERS:
                raise self.not_supported(f"additive_perturbation(init={init!r})")
            p = my_port.AdditivePerturbation(data, SAMPLERS[init], delta_ndim, rng=seed)
        else:
            p = my_port.AdditivePerturbation(data, None, delta_ndim)
            p.delta = np.asarray(delta, dtype=np.float32)
        pert = p(data)
        grad_out = 2 * pert if reduction == "sum" else 2 * pert / pert.size
        return AdditiveRun(p.delta, pert, p.grad_delta(grad_out), p.delta)


register_target("my_port", MyPort)
