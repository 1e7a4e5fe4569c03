"""The port contract: what a target is, the operations it implements, how it registers.

Read this module first when you write a port. A *target* is one implementation of the
documented methods: a column of the conformance table. It supplies the *operations* the
cases need (sample a ball, build a perturbation, step an optimizer, run a perturbed function
with its gradient, run a noise tunnel, ...); a case states the documented example and its
check, and calls those operations on every implementation of the column.

Writing a port
    Subclass :class:`Target` and override the operations your implementation has;
    :data:`OPERATIONS` is the checklist and each operation's docstring below is its contract.
    Every operation takes and returns numpy arrays unless it says otherwise (the additive
    perturbation returns an :class:`AdditiveRun`; the noise tunnel and the eigendistortion
    return a :class:`NoiseTunnelRun` / :class:`EigendistortionRun` around an object with the
    documented API).

SKIP for what a port lacks
    An operation the target does not override raises :class:`NotSupported` (a
    :class:`~conformance.registry.SkipCase`), so the cell is SKIP with the target and the
    operation named. An operation the port has only in part raises
    ``self.not_supported(op, why)`` for the rest; ``why_not`` (op -> reason) marks a whole
    operation as missing, with its reason.

Registering
    :func:`register_target` makes a factory selectable as ``--target name``. A plugin module
    calls it when imported: a module given with ``--plugin MODULE``, or one named by an entry
    point in the group ``refimpl.conformance`` (:data:`ENTRY_POINT_GROUP`), which
    :func:`load_entry_points` imports on every run. ``examples/my_port`` is a worked example.

The shipped targets derive from :class:`Target` too: ``conformance.targets.refimpl`` (this
project on every backend), ``conformance.targets.torch`` (the torch front end) and one module
per documented library (subclasses of :class:`OriginalTarget`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.registry import SkipCase


class NotSupported(SkipCase):
    """Raised by an operation a target cannot express: the cell is SKIP with this reason."""

    def __init__(self, target: str, op: str, why: str = "") -> None:
        super().__init__(f"{target} does not provide {op}" + (f": {why}" if why else ""))
        self.target, self.op = target, op


@dataclass
class AdditiveRun:
    """One run of the additive-perturbation example: numpy copies and the native delta."""

    delta: np.ndarray
    pert: np.ndarray
    grad: np.ndarray
    native: Any = None


#: every operation a case may call, in the order of the seeds (the port's checklist)
OPERATIONS = (
    # seed 000: rai_toolbox perturbations
    "sample_ball",
    "additive_perturbation",
    # seed 001: rai_toolbox optimizers
    "optimizer_steps",
    "frank_wolfe_step_size",
    "top_q_gradient",
    # seed 002: perturbed optimizers
    "solve",
    "perturbed",
    "perturbed_norm_grad",
    "perturbed_shortest_path",
    "perturbed_ascent",
    "perturbed_defaults",
    # seed 003: captum's NoiseTunnel
    "noise_tunnel",
    "captum_noise_tunnel",
    # seed 004: plenoptic's Eigendistortion
    "eigendistortion",
)


class Target:
    """A column: one implementation of the documented methods.

    Subclass it and override the operations your implementation has; the others raise
    :class:`NotSupported`. ``name`` is the column label (``numpy``, ``torch:cuda``,
    ``rai_toolbox``, ``my_port``); ``kind`` is ``"refimpl"``, ``"original"`` or ``"port"``.
    """

    kind: str = "port"
    #: the draws of ``torch.Generator().manual_seed(s)`` (the seeds' printed random values)
    draws_like_torch: bool = False

    #: the column runs on a GPU (torch:cuda, cupy): when it is unavailable, its cells count
    #: as skipped for lack of a GPU, not for a missing library
    needs_gpu: bool = False
    #: distributions whose versions the report lists for this target
    packages: tuple[str, ...] = ()
    #: why the target lacks an operation (op name -> reason), for the SKIP message
    why_not: dict[str, str] = {}
    #: the name it was registered under (:func:`register_target`; set when it is built)
    registered_as: str | None = None

    def __init__(self, name: str = "") -> None:
        self.name = name or type(self).__name__

    @property
    def label(self) -> str:
        """The column label (and the implementation's name in failure messages): the name
        the target was registered under, else :meth:`default_label`."""
        return self.registered_as or self.default_label()

    def default_label(self) -> str:
        """The label of a target that is not registered: ``name`` (a subclass may refine
        it, as the refimpl columns add the device)."""
        return self.name

    # -- plumbing -------------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why the target cannot run on this machine (None: it can); its cells are SKIP."""
        return None

    def prepare(self) -> None:
        """Called before each case runs on the target (e.g. to set global flags)."""

    def implementations(self) -> list[Target]:
        """The implementations one cell checks (the target itself, plus companions)."""
        return [self]

    def supports(self, op: str) -> bool:
        """Whether the target overrides the operation ``op`` (and does not list it in
        ``why_not``)."""
        return op not in self.why_not and getattr(type(self), op) is not getattr(Target, op)

    def applies_to(self, case: Any) -> bool:
        """Whether the case has a cell in this column (a port: every case meant for all
        implementations; cases pinned to some columns are left out)."""
        return case.backends is None

    def asarray(self, obj: Any, dtype: str = "float32") -> Any:
        """``obj`` as the target's native array."""
        return np.asarray(obj, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        if hasattr(x, "detach"):
            return x.detach().cpu().numpy().copy()
        return np.array(x)

    def assert_native(self, native: Any, shape: tuple[int, ...], dtype: str = "float32") -> None:
        """The native array has the shape and dtype (a target adds device, namespace, ...)."""
        assert tuple(native.shape) == shape, f"{self.label}: shape {tuple(native.shape)}, {shape}"
        got = self.to_numpy(native).dtype
        assert got == np.dtype(dtype), f"{self.label}: dtype {got}, expected {dtype}"

    def not_supported(self, op: str, why: str = "") -> NotSupported:
        return NotSupported(self.label, op, why or self.why_not.get(op, ""))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    # -- seed 000: perturbations (rai_toolbox.perturbations) --------------------------------
    def sample_ball(
        self, kind: str, x: np.ndarray, *, epsilon: float, param_ndim: int | None
    ) -> np.ndarray:
        """A draw like ``uniform_like_{kind}_n_ball_(x, epsilon, param_ndim)``; ``kind`` is
        ``l1``, ``l2`` or ``linf``; float32."""
        raise self.not_supported("sample_ball")

    def additive_perturbation(
        self,
        data: np.ndarray,
        *,
        delta_ndim: int | None,
        seed: int,
        reduction: str,
        delta: Any = None,
        init: str = "l1",
    ) -> AdditiveRun:
        """``AdditivePerturbation(data, init_fn=uniform_like_{init}_n_ball, delta_ndim)``
        seeded with ``seed``; ``delta`` (documented values) replaces the draw when given.
        Returns delta, ``pert(data)`` and the gradient of ``(pert(data)**2).sum()`` (or
        ``.mean()``, ``reduction``) with respect to delta; float32."""
        raise self.not_supported("additive_perturbation")

    # -- seed 001: optimizers (rai_toolbox.optim) ------------------------------------------
    def optimizer_steps(
        self, name: str, x0: Sequence, grads: Sequence, **hyper: Any
    ) -> list[np.ndarray]:
        """The iterates of ``name(params=[x], **hyper)`` (e.g. ``L1qFrankWolfe``) after each
        step with the gradient ``grads[k]`` (float32)."""
        raise self.not_supported("optimizer_steps")

    def frank_wolfe_step_size(self, lr: float, k: int) -> float:
        """The Frank-Wolfe step size at step ``k`` (documented: ``lr / (lr + k)``)."""
        raise self.not_supported("frank_wolfe_step_size")

    def top_q_gradient(self, grad: Sequence, q: float, *, param_ndim: int | None) -> np.ndarray:
        """The gradient ``TopQGradientOptimizer(q=q, param_ndim)`` steps with (float32)."""
        raise self.not_supported("top_q_gradient")

    # -- seed 002: perturbed optimizers ----------------------------------------------------
    def solve(self, solver: str, theta: Sequence) -> np.ndarray:
        """The unperturbed solver: ``argmax`` (one-hot), ``hard_or``, or ``shortest_path``
        (``theta`` = the four final-edge costs of the example's graph, which
        ``conformance.seed_graph.weights`` turns into the (9, 9) cost matrix)."""
        raise self.not_supported("solve")

    def perturbed(
        self,
        solver: str,
        theta: Sequence,
        *,
        num_samples: int,
        sigma: float,
        noise: str,
        batched: bool,
        seed: int,
        decorator: bool = False,
    ) -> np.ndarray:
        """The perturbed solver's value at ``theta`` (``decorator``: built with the
        ``@perturbed(...)`` form)."""
        raise self.not_supported("perturbed")

    def perturbed_norm_grad(
        self, solver: str, theta: Sequence, *, num_samples: int, sigma: float, noise: str, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(value, gradient of ``||value||_F``) of the batched perturbed solver."""
        raise self.not_supported("perturbed_norm_grad")

    def perturbed_shortest_path(
        self, costs: Sequence, *, num_samples: int, sigma: float, seeds: Sequence[int]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per seed: the perturbed path matrix of the example's graph
        (``conformance.seed_graph``; normal noise) and the gradient of its entry [8, 6] with
        respect to the four costs."""
        raise self.not_supported("perturbed_shortest_path")

    def perturbed_ascent(
        self,
        costs: Sequence,
        *,
        steps: int,
        lr: float,
        num_samples: int,
        final_samples: int,
        sigma: float,
        seed: int,
    ) -> tuple[np.ndarray, float]:
        """``steps`` plain gradient-ascent steps on P[8, 6] of the perturbed shortest path;
        returns the final costs and P[8, 6] from ``final_samples`` samples."""
        raise self.not_supported("perturbed_ascent")

    def perturbed_defaults(self) -> dict[str, Any]:
        """The defaults of ``perturbed(func)``: num_samples, sigma, noise, batched and
        ``fenchel_young_sigma``."""
        raise self.not_supported("perturbed_defaults")

    # -- seed 003: NoiseTunnel (captum.attr) -----------------------------------------------
    def noise_tunnel(self, method: str, model: Any, **method_kw: Any) -> NoiseTunnelRun:
        """``NoiseTunnel(method(model, **method_kw))`` (``method``: ``Saliency`` or
        ``IntegratedGradients``; ``model`` a spec with ``.refimpl(asarray)`` and
        ``.torch()`` builders)."""
        raise self.not_supported("noise_tunnel")

    def captum_noise_tunnel(self, method: str, model: Any) -> NoiseTunnelRun:
        """A noise tunnel with captum 0.9's released behaviour (per-chunk noise, ...)."""
        raise self.not_supported("captum_noise_tunnel")

    # -- seed 004: Eigendistortion (plenoptic) ---------------------------------------------
    def eigendistortion(
        self, image: np.ndarray, model: Any, dtype: str = "float64"
    ) -> EigendistortionRun:
        """``Eigendistortion(image, model)`` (``model`` a spec with ``.refimpl(target,
        dtype)``, ``.torch(device, dtype)`` and ``.plenoptic(dtype)`` builders); the object
        has plenoptic's API (``synthesize``, ``eigenvalues``, ``eigendistortions``, ...)."""
        raise self.not_supported("eigendistortion")


@dataclass
class NoiseTunnelRun:
    """A noise tunnel on one implementation: ``attribute(x, seed, **kw)``; ``nt`` is the
    native object. ``per_chunk_noise``: draws like captum (per chunk, seeded through
    ``torch.manual_seed``); ``wrappable``: its ``attribution_method`` may be replaced by a
    wrapper (captum checks its type); ``native_torch``: inputs are torch tensors."""

    label: str
    nt: Any
    asarray: Callable[[Any], Any]
    to_numpy: Callable[[Any], np.ndarray]
    per_chunk_noise: bool = False
    native_torch: bool = False
    wrappable: bool = True

    @property
    def attribution_method(self) -> Any:
        return self.nt.attribution_method

    @attribution_method.setter
    def attribution_method(self, method: Any) -> None:
        self.nt.attribution_method = method

    def attribute(self, x: Any, seed: int, **kw: Any) -> Any:
        if self.per_chunk_noise:
            import torch

            torch.manual_seed(seed)
            return self.nt.attribute(x, **kw)
        return self.nt.attribute(x, rng=seed, **kw)


@dataclass
class EigendistortionRun:
    """An Eigendistortion on one implementation: ``eig`` the native object; ``plenoptic``:
    plenoptic's own API (seeded through ``po.set_seed``, prints progress), else this
    project's (``rng=``, ``progress=``)."""

    label: str
    eig: Any
    to_numpy: Callable[[Any], np.ndarray]
    plenoptic: bool = False


# ==========================================================================================
# the registry of targets
# ==========================================================================================
#: the names ``--target`` gives to groups of columns (every backend; every documented library)
GROUPS = ("refimpl", "original")
#: other spellings of built-in columns that ``--backend`` and ``--target`` accept
ALIASES = {"strict": "array_api_strict", "torch:cpu": "torch", "np": "numpy"}

#: the factories registered by plugins, by target name
_FACTORIES: dict[str, Callable[[], Target]] = {}
#: where each registered target comes from (``--plugin 'mod'``, ``entry point ...``), by name
_ORIGINS: dict[str, str] = {}
#: the plugin being imported (:func:`import_plugin`), which registrations are attributed to
_loading: list[str] = []


class PluginError(RuntimeError):
    """A plugin failed: its module does not import, or a target it registered cannot be built
    (the runner reports it as a usage error naming the plugin)."""


def register_target(name: str, factory: Callable[[], Target]) -> None:
    """Make ``factory()`` (a :class:`Target`) selectable as ``--target name``; ``name`` labels
    its column whatever the target's kind. A plugin module (``--plugin``, or an entry point in
    the group ``refimpl.conformance``) calls this when imported. The factory runs only when
    the target is selected (:func:`build_target`).

    Refused (ValueError): a name that is empty, has commas or surrounding spaces, is a
    built-in column, a group (``refimpl``, ``original``) or an alias (``strict``, ``np``,
    ``torch:cpu``) of ``--target``, or is registered already with another factory."""
    from refimpl.validation import check_callable

    if not isinstance(name, str):
        raise TypeError(f"target name must be a str, got {name!r} ({type(name).__name__})")
    if not name.strip() or "," in name or name != name.strip():
        raise ValueError(
            f"target name {name!r}: must be a non-empty string without commas or surrounding spaces"
        )
    _check_not_reserved(name)
    check_callable(f"the factory of target {name!r}", factory)
    if _FACTORIES.get(name, factory) is not factory:
        raise ValueError(
            f"target name {name!r} is already registered ({_origin(name)}); choose another name"
        )
    _FACTORIES[name] = factory
    _ORIGINS[name] = _loading[-1] if _loading else _where(factory)


def _check_not_reserved(name: str) -> None:
    """A ValueError when ``--target name`` would select something else than the target."""
    from conformance.targets import builtin_targets  # the shipped columns, built on Target

    if name in {t.label for t in builtin_targets()}:
        raise ValueError(f"target name {name!r} is taken by a built-in column")
    if name in GROUPS or name in ALIASES:
        raise ValueError(
            f"target name {name!r} is reserved: {', '.join(GROUPS)} name groups of columns "
            f"and {', '.join(ALIASES)} are aliases of built-in columns; choose another name"
        )


def _where(factory: Callable[[], Target]) -> str:
    """Where a target registered outside a plugin comes from: the module of its factory."""
    return f"registered in module {getattr(factory, '__module__', None) or '?'}"


def _origin(name: str) -> str:
    """The plugin (or module) that registered the target ``name``."""
    return _ORIGINS.get(name) or _where(_FACTORIES[name])


def registered_names() -> list[str]:
    """The names of the targets registered by plugins, in registration order."""
    return list(_FACTORIES)


def build_target(name: str) -> Target:
    """The target registered as ``name``, labelled ``name``. :class:`PluginError` naming the
    target and its plugin when the factory raises or returns no :class:`Target`, or when the
    target's ``unavailable()`` raises or returns neither None nor a string."""
    where = f"target {name!r} ({_origin(name)})"
    with _plugin_errors(f"{where}: its factory raised"):
        t = _FACTORIES[name]()
    if not isinstance(t, Target):
        raise PluginError(f"{where}: its factory returned {t!r}, not a conformance Target")
    t.registered_as = name
    if t.kind == "port":
        t.name = name
    if t.label != name:
        raise PluginError(
            f"{where}: its label is {t.label!r}; a registered target is labelled by its "
            "name (override default_label, not label)"
        )
    with _plugin_errors(f"{where}: its unavailable() raised"):
        reason = t.unavailable()
    if reason is not None and not isinstance(reason, str):
        raise PluginError(f"{where}: its unavailable() returned {reason!r}, not None or a str")
    return t


def registered_targets() -> list[Target]:
    """The targets registered by plugins, in registration order (:func:`build_target`)."""
    return [build_target(name) for name in _FACTORIES]


class _plugin_errors:  # noqa: N801 - a context manager, used like a function
    """Turn any exception in the block (``SystemExit`` included: a plugin cannot end the run;
    ``KeyboardInterrupt`` excepted) into a :class:`PluginError`: ``what``, then the error.
    (A class, not ``@contextmanager``, which would turn a ``StopIteration`` back.)"""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, KeyboardInterrupt | PluginError):
            return
        raise PluginError(f"{self.what} {type(exc).__name__}: {exc}") from exc


# ==========================================================================================
# plugins: --plugin modules and installed entry points
# ==========================================================================================
#: the entry-point group whose modules are imported like ``--plugin`` modules
ENTRY_POINT_GROUP = "refimpl.conformance"


def import_plugin(module: str) -> None:
    """Import the ``--plugin`` module ``module`` (it registers its targets and cases);
    :class:`PluginError` naming it when the import fails in any way."""
    import importlib

    _load_plugin(f"--plugin {module!r}", lambda: importlib.import_module(module))


def load_entry_points() -> None:
    """Import the module of every entry point in the group :data:`ENTRY_POINT_GROUP` (each
    registers its targets when imported); :class:`PluginError` names the first that fails."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _load_plugin(f"entry point {ep.name!r} ({ep.value})", ep.load)


def _load_plugin(origin: str, load: Callable[[], Any]) -> None:
    """Run ``load`` (an import); the targets it registers come from the plugin ``origin``,
    and its failures (any exception, ``SystemExit`` included) are a :class:`PluginError`
    naming it."""
    _loading.append(origin)
    try:
        with _plugin_errors(f"{origin} cannot be imported:"):
            load()
    finally:
        _loading.pop()


# ==========================================================================================
# the documented libraries' columns (conformance.targets.rai_toolbox, captum, ...)
# ==========================================================================================
class OriginalTarget(Target):
    """A documented library itself; a column when it is installed."""

    kind = "original"
    module = ""

    def __init__(self) -> None:
        super().__init__(self.module)

    def unavailable(self) -> str | None:
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed (pip install 'refimpl[bench]')"
        return None

    def applies_to(self, case: Any) -> bool:
        return self.name in case.originals
