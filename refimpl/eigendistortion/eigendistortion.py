r"""Eigendistortions: the extreme eigenvectors of a model's Fisher matrix at an image.

For a model :math:`y = f(x)` with additive white Gaussian noise on its response, the Fisher
information matrix at the image :math:`x` is

.. math::

    F = J^\top J, \qquad J = \partial f / \partial x \in \mathbb{R}^{m \times n},

and :math:`\varepsilon^\top F \varepsilon = \lVert J\varepsilon\rVert^2` is, to second
order, how far a small distortion :math:`\varepsilon` moves the response. Among
distortions of unit norm, the top eigenvector of :math:`F` is the one the model finds most
visible, the bottom eigenvector the least visible (Berardino et al. 2017). This class
computes them with the methods of plenoptic's ``Eigendistortion`` (``exact``, ``power``,
``randomized_svd``), their verified bugs fixed, plus Lanczos (``eigsh``); see
``docs/eigendistortion.md``.

Reference: A. Berardino, V. Laparra, J. Ballé, E. Simoncelli. Eigen-distortions of
hierarchical representations. NeurIPS 2017.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from backends import as_rng, backend_of
from backends.progress import progress_bar
from refimpl.eigendistortion import io, solvers
from refimpl.eigendistortion.options import EigendistortionOptions, EigendistortionResult
from refimpl.eigendistortion.solvers import CountedOperator, Pairs
from refimpl.linops import FisherOperator, jacobian
from refimpl.validation import check_array, check_finite, check_int

__all__ = ["Eigendistortion"]

#: ``method="exact"`` warns when the Jacobian has more entries than this (plenoptic's rule)
JACOBIAN_WARN_ENTRIES = 1e6
#: ... and when the image has more pixels than this (m or n products to build it)
JACOBIAN_WARN_PIXELS = 1e4
#: a ``stop_criterion`` below this many machine epsilons of the image dtype is clamped to it
#: (products computed in float32 carry rounding of ~1e-7 lambda_max, and a Rayleigh-Ritz step
#: adds more, so a smaller residual is out of reach); ``convergence`` records both numbers
TOL_FLOOR_EPS = 100
#: shift of the bottom solve: Lanczos on sigma I - F with sigma = SHIFT * lambda_max
SHIFT = 1.01
#: the bottom solve stops at this share of the tolerance: its residual estimate is the
#: residual up to rounding, which the final product (``verify``) measures
BOTTOM_MARGIN = 0.9
#: bottom solves at most, when the true residual misses what the estimate met
BOTTOM_ATTEMPTS = 2
#: Krylov basis (columns) for the top and for the bottom of the spectrum. The bottom's thick
#: restarts keep the half of the Ritz vectors nearest the bottom, and with refined vectors
#: they lose little: on plenoptic's Gaussian(3) at 64 x 64, 0% more products than an
#: unrestarted basis at the float32 tolerance and 17% more at 1e-6 in float64, while each
#: step reads a basis of at most 128 vectors instead of up to a thousand (measured in
#: docs/eigendistortion.md)
TOP_BASIS, BOTTOM_BASIS = 20, 128
#: ... but an image of at most this many pixels keeps its whole Krylov space (no restart: the
#: bottom solve ends when it has spanned the image, at the latest; cheap at that size)
WHOLE_SPACE = 512
#: ... capped so that the basis takes at most this many bytes
BASIS_BYTES = 512 * 2**20
#: images with at most this many pixels are solved by eigsh from the dense F (n products)
DENSE_MAX_PIXELS = 64
#: Gaussian probes of the randomized SVD's error estimate
PROBES = 10


class Eigendistortion:
    r"""Most and least noticeable distortions of ``image`` for ``model``.

    Parameters
    ----------
    image : array
        One image: 1-D of any length, or any shape whose first (batch) axis has size 1,
        e.g. ``(1, C, H, W)``. Real floating dtype, finite pixels.
    model : object
        Anything implementing the derivative protocol: ``model(x)``, ``model.jvp(x, v)``,
        ``model.vjp(x, u)`` (the models of :mod:`refimpl.models`, a user's class,
        ``refimpl.torch.as_model(module)``). It is linearized once, at ``image``.

    Attributes
    ----------
    eigendistortions : array
        ``(n_dist, *image.shape[1:])`` (``(n_dist, n)`` for 1-D), after :meth:`synthesize`:
        unit-norm distortions in the order of ``eigenvalues``.
    eigenvalues : array
        ``(n_dist,)``, non-negative, in decreasing order.
    eigenindex : int64 array
        ``(n_dist,)``, the position of each eigenvalue in the full decreasing spectrum:
        ``exact`` ``0..n-1``; ``power`` and ``eigsh`` ``[0..k) + [n-k..n)``;
        ``randomized_svd`` ``[0..k)``.
    jacobian : array or None
        The ``(m, n)`` dense Jacobian once ``method="exact"`` (or :meth:`compute_jacobian`)
        has run, else None.
    convergence : dict
        Per block ("top", "bottom", or "exact"): residuals
        :math:`\lVert Fv - \lambda v\rVert / \lambda_{\max}`, converged, n_products, ...
    """

    def __init__(self, image: Any, model: Any) -> None:
        xp, device = _check_image(image)
        self._xp, self._device = xp, device
        self._image = image
        self._model = model
        self._fisher = FisherOperator(model, image)  # TypeError: no derivative protocol
        check_finite(self._fisher.y, name="model(image)")
        self._n = self._fisher.shape[0]
        self._image_shape = tuple(image.shape[1:]) if image.ndim > 1 else tuple(image.shape)
        self._jacobian: Any = None
        self._result: EigendistortionResult | None = None

    # -- attributes ---------------------------------------------------------------------------
    @property
    def image(self) -> Any:
        return self._image

    @property
    def model(self) -> Any:
        return self._model

    @property
    def representation(self) -> Any:
        """``model(image)``, computed once."""
        return self._fisher.y

    @property
    def n_pixels(self) -> int:
        """n, the size of the image and of the Fisher matrix (n x n)."""
        return self._n

    @property
    def jacobian(self) -> Any:
        return self._jacobian

    @property
    def result(self) -> EigendistortionResult | None:
        """What the last :meth:`synthesize` (or :meth:`load`) produced; None before."""
        return self._result

    @property
    def eigendistortions(self) -> Any:
        return None if self._result is None else self._result.eigendistortions

    @property
    def eigenvalues(self) -> Any:
        return None if self._result is None else self._result.eigenvalues

    @property
    def eigenindex(self) -> Any:
        return None if self._result is None else self._result.eigenindex

    @property
    def method(self) -> str | None:
        """The method of the last :meth:`synthesize` (or of the loaded file)."""
        return None if self._result is None else self._result.method

    @property
    def convergence(self) -> dict[str, Any]:
        return {} if self._result is None else self._result.convergence

    def restore(self, result: EigendistortionResult | None, jacobian: Any = None) -> None:
        """Set the results (from a file, or from a copy on another device): arrays of this
        image's library, device and dtype, shaped for this image."""
        xp = self._xp
        if result is not None:
            n_dist = result.eigenvalues.shape[0]
            if tuple(result.eigendistortions.shape) != (n_dist, *self._image_shape) or tuple(
                result.eigenindex.shape
            ) != (n_dist,):
                raise ValueError(
                    f"the results do not fit this image: {n_dist} eigenvalues, eigendistortions "
                    f"of shape {tuple(result.eigendistortions.shape)}, eigenindex of shape "
                    f"{tuple(result.eigenindex.shape)} (image shape {self._image_shape})"
                )
            if not bool(xp.all((result.eigenindex >= 0) & (result.eigenindex < self._n))):
                raise ValueError(f"eigenindex values must lie in [0, {self._n})")
        if jacobian is not None and tuple(jacobian.shape) != tuple(self._fisher.jacobian.shape):
            raise ValueError(
                f"the Jacobian must have shape {self._fisher.jacobian.shape}, got "
                f"{tuple(jacobian.shape)}"
            )
        self._result, self._jacobian = result, jacobian

    def __repr__(self) -> str:
        return (
            f"Eigendistortion(\n  image = {tuple(self._image.shape)} ({self._image.dtype}),\n"
            f"  model = {self._model!r},\n)"
        )

    # -- synthesis ----------------------------------------------------------------------------
    def synthesize(
        self,
        method: str = "power",
        k: int = 1,
        max_iter: int = 1000,
        p: int = 5,
        q: int = 2,
        stop_criterion: float = 1e-7,
        *,
        rng: Any = None,
        progress: bool = True,
        lanczos: str = "auto",
        warn_unconverged: bool = True,
        executor: Any = None,
    ) -> None:
        r"""Compute eigendistortions with ``method``.

        ``"exact"``: all n pairs from the dense Jacobian. ``"power"``: the k largest and k
        smallest by shifted orthogonal iteration (at most ``max_iter`` iterations each).
        ``"randomized_svd"``: the k largest, from a sketch of k + ``p`` columns and ``q``
        power steps. ``"eigsh"``: the k largest and k smallest by Lanczos (at most
        ``max_iter`` block products each). ``stop_criterion``: the iterative methods stop
        when every residual :math:`\lVert Fv - \lambda v\rVert` is at most
        ``stop_criterion`` times :math:`\lambda_{\max}`. A ``stop_criterion`` below 100
        machine epsilons of the image dtype (1.19e-5 in float32, 2.2e-14 in float64), which
        rounding keeps out of reach, is clamped to that value: each block of
        ``convergence`` records ``stop_criterion`` (as given), ``tolerance`` (the value
        used) and ``clamped``. ``warn_unconverged``: warn (UserWarning, with the residual)
        when a block stops at ``max_iter`` without converging (the torch front end, like
        plenoptic, is silent unless asked; ``convergence`` has the facts either way).
        ``rng``: seed or generator of the random start. ``progress``: tqdm
        progress bars. ``lanczos`` (``eigsh``'s top pairs): ``"auto"`` (ARPACK or cupyx
        through ``backends.linalg.eigsh`` where a route exists, else Krylov-Schur), ``"arpack"``
        (that route only: ValueError where there is none, before any Fisher product),
        ``"krylov_schur"`` (the array-API Lanczos, which checks
        convergence at every step; the bottom pairs always use it). ``executor``: None, or a
        ``concurrent.futures.Executor`` (a thread pool, dask's ``Client.get_executor()``)
        on which ``randomized_svd`` multiplies its sketch, ``SKETCH_BLOCK`` columns per task
        (every task linearizes the model at the image anew: the model must pickle for an
        executor of other processes); the results equal those without one, bit for bit, when
        the processes run as many threads (torch's CPU convolutions round by thread count; a
        dask worker runs one). The other methods run here.
        """
        o = EigendistortionOptions(
            method, k, max_iter, p, q, stop_criterion, progress, lanczos, warn_unconverged,
            executor,
        )  # fmt: skip
        n, k = self._n, check_int("k", k, low=1, high=self._n)
        xp = self._xp
        floor = TOL_FLOOR_EPS * float(xp.finfo(self._image.dtype).eps)
        tol = max(o.stop_criterion, floor)
        criterion = dict(
            stop_criterion=o.stop_criterion, tolerance=tol, clamped=o.stop_criterion < floor
        )
        if o.method == "exact":
            self._synthesize_exact()
            return
        rng = as_rng(rng, like=self._image)
        if o.method == "randomized_svd":
            blocks = {"top": self._randomized_svd(k, o.p, o.q, tol, rng, o.executor)}
        elif o.method == "power":
            blocks = self._power(k, o.max_iter, tol, rng, o.progress)
        else:
            blocks = self._eigsh(k, o.max_iter, tol, rng, o.progress, o.lanczos)
        vecs = [b.eigenvectors for b in blocks.values()]
        vals = [b.eigenvalues for b in blocks.values()]
        index = list(range(k)) + (list(range(n - k, n)) if "bottom" in blocks else [])
        convergence = {name: {**b.summary(), **criterion} for name, b in blocks.items()}
        self._store(o.method, xp.concat(vals), xp.concat(vecs, axis=1), index, convergence)
        for name, b in blocks.items():
            if not b.converged and o.warn_unconverged:
                self._warn_unconverged(o.method, name, b, o.stop_criterion, tol)

    def _store(
        self, method: str, values: Any, vectors: Any, index: list[int], convergence: dict
    ) -> None:
        xp = self._xp
        self._result = EigendistortionResult(
            method,
            xp.reshape(xp.matrix_transpose(vectors), (vectors.shape[1], *self._image_shape)),
            # F is positive semidefinite: a Rayleigh quotient below 0 is rounding (plenoptic
            # takes abs(), which reorders the tail; clipping keeps the decreasing order)
            xp.clip(values, 0.0, None),
            xp.asarray(index, dtype=xp.int64, device=self._device),
            convergence,
        )

    def _operator(self, bar: Any = None) -> CountedOperator:
        flat = self._xp.reshape(self._image, (-1,))
        return CountedOperator(self._fisher.matmat, self._n, flat, bar=bar)

    def _normal(self, rng: Any, k: int) -> Any:
        return rng.normal((self._n, k), dtype=self._image.dtype)

    def _bar(self, enabled: bool, desc: str) -> Any:
        """A bar counting the Fisher products of one solve (``_operator(bar)`` adds them), the
        residual as its postfix. Its total is unknown: a solve stops when its residuals are
        small, usually long before ``max_iter``; a converged one ends at 100% (``_finish``)."""
        return progress_bar(total=None, enabled=enabled, desc=desc, unit="Fv")

    def _warn_unconverged(self, method: str, name: str, b: Pairs, given: float, tol: float) -> None:
        worst = max(b.residuals)
        criterion = f"stop_criterion {given:.3g}"
        if tol != given:
            criterion += f" (clamped to {tol:.3g}, 100 eps of {self._image.dtype})"
        extra = ""
        if "error_estimate" in b.extra:
            extra = (
                "; estimated approximation error of the sketch ||(I - QQ^T) F||_F / ||F||_F = "
                f"{b.extra['error_estimate']:.2e}"
            )
        hint = {
            "power": "raise max_iter or use method='eigsh'",
            "eigsh": "raise max_iter or stop_criterion",
            "randomized_svd": "raise p and q, or use method='eigsh'",
        }[method]
        warnings.warn(
            f"{method}: the {name} eigenpairs did not converge after {b.n_products} Fisher "
            f"products: residual ||F v - lambda v|| = {worst:.2e} lambda_max > "
            f"{criterion}{extra} ({hint})",
            UserWarning,
            stacklevel=3,
        )

    def compute_jacobian(self) -> Any:
        """The dense Jacobian ``(m, n)`` at the image (computed once, then cached), from
        min(m, n) batched JVPs or VJPs."""
        if self._jacobian is None:
            m, n = self._fisher.jacobian.shape
            if n > JACOBIAN_WARN_PIXELS:
                warnings.warn(
                    f"the image has {n} > {JACOBIAN_WARN_PIXELS:.0e} pixels: building the "
                    f"Jacobian takes {min(m, n)} products and may take too long",
                    UserWarning,
                    stacklevel=2,
                )
            self._jacobian = jacobian(None, self._fisher.jacobian)
        return self._jacobian

    def _synthesize_exact(self) -> None:
        xp = self._xp
        m, n = self._fisher.jacobian.shape
        if m * n > JACOBIAN_WARN_ENTRIES:
            warnings.warn(
                # plenoptic's wording first (its filters match the start of the message)
                f"Jacobian > 1e6 elements and may cause out-of-memory ({m} x {n}). Use "
                "method = {'power', 'randomized_svd', 'eigsh'}.",
                UserWarning,
                stacklevel=3,
            )
        J = self.compute_jacobian()
        F = xp.matrix_transpose(J) @ J
        w, V = xp.linalg.eigh(F)
        convergence = {"exact": dict(n_products=int(min(m, n)), converged=True, solver="eigh")}
        self._store("exact", xp.flip(w, axis=0), xp.flip(V, axis=1), list(range(n)), convergence)

    def _power(self, k: int, max_iter: int, tol: float, rng: Any, progress: bool) -> dict:
        with _closing(self._bar(progress, f"Top k={k} eigendists")) as bar:
            F, t0 = self._operator(bar), time.perf_counter()
            top = solvers.power_iteration(
                F, self._normal(rng, k), tol=tol, max_iter=max_iter, bar=bar
            )
            _finish(bar, top.residuals, top.converged)
        top.extra["seconds"] = time.perf_counter() - t0
        sigma = top.scale  # the largest Ritz value: an estimate of lambda_max from below
        with _closing(self._bar(progress, f"Bottom k={k} eigendists")) as bar:
            F, t0 = self._operator(bar), time.perf_counter()
            bottom = solvers.power_iteration(
                F, self._normal(rng, k), shift=sigma, scale=sigma, tol=tol, max_iter=max_iter,
                bar=bar,
            )  # fmt: skip
            _finish(bar, bottom.residuals, bottom.converged)
        bottom.extra["seconds"] = time.perf_counter() - t0
        return {"top": top, "bottom": bottom}

    def _randomized_svd(self, k: int, p: int, q: int, tol: float, rng: Any, executor: Any) -> Pairs:
        """The sketch and its power steps in blocks of ``SKETCH_BLOCK`` columns, one task
        each (``solvers.blocked_product``): here on this object's linearization, on an
        executor from the model and the image; the probes of the error estimate here."""
        source = self._fisher if executor is None else _ModelAtImage(self._model, self._image)

        def sketch(V: Any) -> Any:
            return solvers.blocked_product(_fisher_product, source, V, executor=executor)

        F = CountedOperator(sketch, self._n, self._operator().like, cost=solvers.padded)
        ell = min(self._n, k + p)
        return solvers.randomized_svd(
            F, self._normal(rng, ell), k, q=q, probes=self._normal(rng, PROBES), tol=tol,
            probe_operator=self._operator(),
        )  # fmt: skip

    def _eigsh(
        self, k: int, max_iter: int, tol: float, rng: Any, progress: bool, lanczos: str
    ) -> dict:
        xp, n = self._xp, self._n
        if n <= max(DENSE_MAX_PIXELS, 4 * k):
            t0 = time.perf_counter()
            top, bottom = solvers.dense_pairs(self._operator(), k)
            bottom.n_products = 0  # both ends come from the same n products
            top.extra["seconds"], bottom.extra["seconds"] = time.perf_counter() - t0, 0.0
            return {"top": top, "bottom": bottom}
        itemsize = xp.finfo(self._image.dtype).bits // 8
        cap = max(3 * k, BASIS_BYTES // (itemsize * n))
        bottom_basis = n if n <= WHOLE_SPACE else BOTTOM_BASIS
        # top: Lanczos through scipy / cupyx where a route exists, else Krylov-Schur
        with _closing(self._bar(progress, f"Top k={k} eigendists")) as bar:
            F, t0 = self._operator(bar), time.perf_counter()
            solver = "arpack"
            try:
                if lanczos == "krylov_schur":
                    raise NotImplementedError("Krylov-Schur asked for")
                steps_per_restart = max(2 * k + 1, TOP_BASIS) - k
                X = solvers.arpack(
                    F, k, which="LA", tol=tol, max_iter=max(1, max_iter // steps_per_restart),
                    seed=int(rng.integers(0, 2**31 - 1, ())),
                )  # fmt: skip
            except (NotImplementedError, ImportError, RuntimeError) as exc:
                no_route = isinstance(exc, NotImplementedError | ImportError)
                if lanczos == "arpack" and isinstance(exc, NotImplementedError):
                    raise ValueError(
                        f"lanczos='arpack' needs a Lanczos library for these arrays: {exc}; "
                        "use lanczos='auto' or 'krylov_schur'"
                    ) from None
                if lanczos == "arpack" and no_route:
                    raise
                solver = "krylov_schur" if no_route else "arpack (no convergence), krylov_schur"
                left = max(1, max_iter - F.n_products // k)
                X = solvers.krylov_schur(
                    F, self._normal(rng, k), k, which="LA", tol=tol, max_steps=left,
                    basis_size=min(cap, max(TOP_BASIS, 3 * k)), rng=rng, bar=bar,
                ).X  # fmt: skip
            lam, V, res, scale = solvers.verify(F, X)
            _finish(bar, res, max(res) <= tol)
        top = Pairs(lam, V, res, max(res) <= tol, F.n_products, F.n_products // k, scale)
        top.extra.update(solver=solver, seconds=time.perf_counter() - t0, product_seconds=F.seconds)
        # bottom: Lanczos on sigma I - F, whose largest eigenvalues are F's smallest; the
        # refined vectors (target sigma) minimise ||F x|| over the Krylov space
        sigma = SHIFT * scale
        with _closing(self._bar(progress, f"Bottom k={k} eigendists")) as bar:
            F, t0 = self._operator(bar), time.perf_counter()
            A = CountedOperator(lambda V: sigma * V - F(V), n, F.like)
            X, margin, steps, restarts, checks = self._normal(rng, k), BOTTOM_MARGIN, 0, 0, 0
            for _ in range(BOTTOM_ATTEMPTS):
                ks = solvers.krylov_schur(
                    A, X, k, which="LA", tol=tol * margin, max_steps=max_iter - steps,
                    basis_size=min(cap, max(bottom_basis, 3 * k)), rng=rng, bar=bar,
                    target=sigma, scale=scale,
                )  # fmt: skip
                steps, restarts, checks = (
                    steps + ks.steps,
                    restarts + ks.restarts,
                    checks + ks.checks,
                )
                lam, V, res, _ = solvers.verify(F, ks.X, scale=scale)
                if max(res) <= tol or not ks.converged or steps >= max_iter:
                    break
                # the estimate met the tolerance and the true product did not: near the
                # rounding floor of float32 products the two differ by some 10%. Once more,
                # from these vectors, the margin narrowed by the gap (and the margin again)
                X, margin = V, margin * BOTTOM_MARGIN * tol / max(res)
            _finish(bar, res, max(res) <= tol)
        bottom = Pairs(lam, V, res, max(res) <= tol, F.n_products, steps, scale)
        bottom.extra.update(
            solver="krylov_schur (refined)", restarts=restarts, checks=checks,
            estimate=ks.estimate, shift=sigma, seconds=time.perf_counter() - t0,
            product_seconds=F.seconds,
        )  # fmt: skip
        return {"top": top, "bottom": bottom}

    # -- indexing, persistence --------------------------------------------------------------
    def indexer(self, idx: int) -> int:
        """Position in ``eigenvalues`` of the eigenvalue with index ``idx`` of the full
        spectrum (negative: from the end, ``-1`` is the smallest, index n - 1); TypeError for
        anything but an int (a bool is not an index)."""
        idx = check_int("idx", idx)
        if self._result is None:
            raise ValueError("No eigendistortions synthesized")
        try:
            i = range(self._n)[idx]
        except IndexError:
            raise ValueError(
                f"idx={idx!r}: eigenindex must be the index of one of the vectors, in "
                f"[-{self._n}, {self._n}) (n = {self._n})"
            ) from None
        index = [int(v) for v in backend_of(self._xp).to_numpy(self.eigenindex).tolist()]
        if i not in index:
            raise ValueError(
                f"idx={idx!r}: eigenindex must be the index of one of the vectors: {idx!r} "
                f"(= {i}) is not among the synthesized "
                f"{index if len(index) <= 8 else index[:4] + ['...']}"
            )
        return index.index(i)

    def save(self, path: Any) -> None:
        """Write the image, the model's output and the results to ``path`` (an .npz file with
        a JSON metadata entry; written to a temporary file, then renamed)."""
        io.save(self, path)

    def load(
        self,
        path: Any,
        *,
        method: str | None = None,
        raise_on_checks: bool = True,
        atol: float = 1e-8,
        rtol: float = 1e-5,
    ) -> None:
        """Load results saved by :meth:`save` into this just-made object.

        Refuses (ValueError) a file made from another image, another model output, or, when
        ``method`` is given, another method. ``raise_on_checks=False`` turns the value
        checks into warnings (shapes and dtypes must still match). ``atol``, ``rtol``: finite,
        >= 0. A damaged or crafted file raises ValueError naming the path and what is wrong;
        nothing is assigned until every check has passed.
        """
        io.load(self, path, method=method, raise_on_checks=raise_on_checks, atol=atol, rtol=rtol)


def _fisher_product(source: Any, V: Any) -> Any:
    """:math:`F V` (n, b): ``source`` is this object's :class:`FisherOperator`, or a
    :class:`_ModelAtImage`, linearized anew (a task on an executor: linearizations and
    autograd graphs do not pickle, models and images do)."""
    if isinstance(source, FisherOperator):
        return source.matmat(V)
    return FisherOperator(source.model, source.image).matmat(V)


class _ModelAtImage:
    """The model and the image, for the tasks of an executor. In this process (a thread
    pool) they are used as they are; to another process they travel as one pickle of
    protocol 4 (made by cloudpickle where it is installed, which pickles modules and
    functions by reference), from which numpy makes fresh arrays. (A process executor such
    as dask may hand a task the arrays of a protocol-5 pickle in place, in unaligned memory,
    where numpy takes other loops: products one ulp apart.)"""

    def __init__(self, model: Any, image: Any) -> None:
        self.model, self.image = model, image

    def __reduce__(self) -> tuple:
        try:
            import cloudpickle as pickler
        except ImportError:  # pragma: no cover - dask brings cloudpickle
            import pickle as pickler
        return _load_model_at_image, (pickler.dumps((self.model, self.image), protocol=4),)


def _load_model_at_image(blob: bytes) -> _ModelAtImage:
    import pickle

    return _ModelAtImage(*pickle.loads(blob))


def _finish(bar: Any, residuals: list[float], converged: bool) -> None:
    """The solve's final residual on its bar; a converged solve's bar reads 100% (the count
    of Fisher products becomes the total)."""
    bar.set_postfix_str(f"residual {max(residuals):.2e}")
    if converged:
        bar.complete()


class _closing:
    """``with _closing(bar) as bar:`` closes a progress bar even on error."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def __enter__(self) -> Any:
        return self.bar

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()


def _check_image(image: Any) -> tuple[Any, Any]:
    """``(xp, device)``; one image: 1-D of any length, or a leading batch axis of size 1."""
    xp, device = check_array(image, name="image")
    if xp.finfo(image.dtype).bits < 32:
        raise TypeError(
            f"image must be float32 or float64, got {image.dtype}: eigensolvers (eigh, QR) "
            "need at least single precision; cast the image and the model"
        )
    shape = tuple(image.shape)
    if image.ndim == 0 or any(s == 0 for s in shape):
        raise ValueError(f"image must have at least one pixel, got shape {shape}")
    if image.ndim > 1 and shape[0] != 1:
        raise ValueError(
            f"image must be a single image: batch dimension must be 1, got shape {shape} "
            "(each image has its own Fisher matrix; loop over the batch)"
        )
    check_finite(image, name="image")
    return xp, device
