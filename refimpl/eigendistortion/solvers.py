r"""Extreme eigenpairs of a symmetric positive semidefinite operator :math:`F`, from products.

Every solver sees :math:`F` only through ``apply(V) = F V`` on blocks ``V`` of shape
``(n, b)`` (one batched call), and returns a :class:`Pairs`: eigenvalues in decreasing
order, orthonormal eigenvectors as columns, and how well they are known.

Convergence is judged by the **residual** of each pair, relative to the largest eigenvalue:

.. math::

    \frac{\lVert F v_i - \lambda_i v_i \rVert}{\lambda_{\max}} \le \mathrm{tol}.

Not by the change of :math:`\lambda` between iterations (an absolute rule is meaningless
when :math:`\lambda_{\max} \approx 10^{-3}`), and never by the angle to "the" eigenvector:
the bottom of a Fisher spectrum is degenerate (null spaces of dimension up to
:math:`n - m`), so any vector of the near-null space is a right answer, and it is the
residual (with the Rayleigh quotient :math:`\lambda_i = v_i^\top F v_i`) that says so.

* :func:`power_iteration`: orthogonal (subspace) iteration with a Rayleigh-Ritz step,
  Golub & Van Loan, *Matrix Computations*, Alg. 8.2.8; shifted by :math:`\sigma` for the
  bottom of the spectrum. One block product per iteration.
* :func:`randomized_svd`: Halko, Martinsson & Tropp (2011), Alg. 4.4 (randomized subspace
  iteration, re-orthonormalised after every product) and 5.3 (eigen-decomposition of the
  projected matrix); the a-posteriori error bound of their Sec. 4.3.
* :func:`krylov_schur`: thick-restart block Lanczos, i.e. the Krylov-Schur method of
  Stewart (2001) for a symmetric operator (Zhou & Saad 2008 for blocks), written in the
  array API standard: the fast method on every backend and device.
* :func:`arpack`: Lanczos through ``backends.linalg.eigsh`` (scipy's ARPACK on the host, cupyx
  on a GPU) where such a route exists.
* :func:`dense_pairs`: :math:`F` built column by column and diagonalised (small ``n``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from backends import linalg, namespace_and_device
from backends.ops import assign
from backends.threads import one_thread_per_op
from refimpl.parallel import run_tasks

__all__ = [
    "CountedOperator",
    "KrylovSchur",
    "Pairs",
    "SKETCH_BLOCK",
    "arpack",
    "blocked_product",
    "dense_pairs",
    "krylov_schur",
    "power_iteration",
    "randomized_svd",
    "rayleigh_ritz",
]


@dataclass
class Pairs:
    r"""Eigenpairs of one end of the spectrum.

    ``eigenvalues`` (k,) in decreasing order, ``eigenvectors`` (n, k) orthonormal columns,
    ``residuals`` :math:`\lVert F v - \lambda v\rVert / \lambda_{\max}` per pair (host
    floats), ``converged`` (every residual <= tol), ``n_products`` (Fisher-vector products
    spent), ``iterations`` (power iterations, Lanczos restarts, ...), ``scale`` (the
    :math:`\lambda_{\max}` the residuals are divided by), ``extra`` (solver-specific).
    """

    eigenvalues: Any
    eigenvectors: Any
    residuals: list[float]
    converged: bool
    n_products: int
    iterations: int
    scale: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The host-side facts (for ``Eigendistortion.convergence`` and saved files)."""
        return dict(
            residuals=[float(r) for r in self.residuals],
            max_residual=max((float(r) for r in self.residuals), default=0.0),
            converged=bool(self.converged),
            n_products=int(self.n_products),
            iterations=int(self.iterations),
            scale=float(self.scale),
            **self.extra,
        )


class CountedOperator:
    """``apply`` with a count of the vectors it has been applied to (``n_products``) and the
    time spent in it (``seconds``: host time, so an asynchronous device is timed when its
    result is used), also added to the progress bar ``bar`` when one is given (a bar then
    counts every product, those of ARPACK and of the final check included). ``cost(c)``:
    the products a block of c vectors costs (default c; a blocked product also multiplies the
    zero columns that fill its last block)."""

    def __init__(
        self,
        apply: Callable[[Any], Any],
        n: int,
        like: Any,
        *,
        bar: Any = None,
        cost: Callable[[int], int] | None = None,
    ) -> None:
        self._apply, self.n, self.like, self.bar = apply, n, like, bar
        self._cost = cost
        self.n_products, self.seconds = 0, 0.0

    def __call__(self, V: Any) -> Any:
        count = V.shape[1] if self._cost is None else self._cost(V.shape[1])
        self.n_products += count
        if self.bar is not None:
            self.bar.update(count)
        t0 = time.perf_counter()
        out = self._apply(V)
        self.seconds += time.perf_counter() - t0
        return out


# -- products in column blocks of a fixed width ----------------------------------------------
#: columns of one block (one task) of :func:`blocked_product`: a fixed width, so that the
#: product of a column never depends on k, p, the executor or how many columns there are
SKETCH_BLOCK = 8


def padded(c: int, width: int = SKETCH_BLOCK) -> int:
    """Columns ``blocked_product`` multiplies for ``c`` columns (whole blocks)."""
    return -(-c // width) * width


def blocked_product(
    product: Callable[[Any, Any], Any], source: Any, X: Any, *, executor: Any = None
) -> Any:
    r""":math:`F X`, ``SKETCH_BLOCK`` columns at a time: block i is
    ``product(source, X_i)``, one task of :func:`refimpl.parallel.run_tasks` (here when
    ``executor`` is None, else on it), the results put side by side in block order.

    Every block has exactly ``SKETCH_BLOCK`` columns (the last one is filled up with zero
    columns, dropped from the result), so column c of the result is computed by the same
    arithmetic, in the same block (c // SKETCH_BLOCK) at the same position, whatever the
    executor, the number of workers and the number of columns of X: the columns that two
    sketches share come out bitwise equal. On another process a task unpickles ``product``
    (a module-level function), ``source`` and X (each task carries the whole X, O(n c)) and
    multiplies a fresh copy of its block.
    """
    xp, dev = namespace_and_device(X)
    n, c = X.shape
    count = padded(c) // SKETCH_BLOCK
    if padded(c) > c:
        X = xp.concat([X, xp.zeros((n, padded(c) - c), dtype=X.dtype, device=dev)], axis=1)
    task = partial(_block_task, product, source, X)
    parts = list(run_tasks(task, count, executor, what="sketch block"))
    return xp.concat(parts, axis=1)[:, :c]


def _block_task(product: Callable[[Any, Any], Any], source: Any, X: Any, i: int) -> Any:
    """Block i of ``X`` as a fresh array (a task in another process may find ``X`` in
    unaligned memory, where numpy takes other loops), multiplied."""
    xp, _ = namespace_and_device(X)
    block = xp.asarray(X[:, i * SKETCH_BLOCK : (i + 1) * SKETCH_BLOCK], copy=True)
    return product(source, block)


# -- shared steps ---------------------------------------------------------------------------
def _sym(xp: Any, H: Any) -> Any:
    return (H + xp.matrix_transpose(H)) / 2


def rayleigh_ritz(V: Any, W: Any) -> tuple[Any, Any, Any]:
    r"""Ritz pairs of :math:`F` in the span of orthonormal ``V``, given ``W = F V``.

    :math:`H = V^\top W = Y \Theta Y^\top`; returns :math:`\theta` (ascending), :math:`VY`
    and :math:`WY = F(VY)` (no new product).
    """
    xp, _ = namespace_and_device(V, W)
    theta, Y = xp.linalg.eigh(_sym(xp, xp.matrix_transpose(V) @ W))
    return theta, V @ Y, W @ Y


def _residuals(xp: Any, V: Any, W: Any, theta: Any) -> Any:
    r"""Column norms of :math:`F V - V \Theta` (``W = F V``)."""
    return xp.linalg.vector_norm(W - V * theta[None, :], axis=0)


def _orthonormal(xp: Any, A: Any) -> Any:
    Q, _ = xp.linalg.qr(A)
    return Q


def _host_floats(xp: Any, a: Any) -> list[float]:
    return [float(a[i]) for i in range(a.shape[0])]


def _descending(xp: Any, theta: Any, V: Any, k: int, top: bool) -> tuple[Any, Any]:
    """The k largest (``top``) or k smallest Ritz pairs of ascending ``theta``, in
    decreasing order of eigenvalue."""
    j = theta.shape[0]
    idx = list(range(j - 1, j - 1 - k, -1)) if top else list(range(k - 1, -1, -1))
    ind = xp.asarray(idx, dtype=xp.int64, device=theta.device)
    return xp.take(theta, ind, axis=0), xp.take(V, ind, axis=1)


def verify(F: CountedOperator, V: Any, *, scale: float | None = None) -> tuple:
    """One product ``F V`` on candidate vectors: Rayleigh-Ritz, then true residuals.

    Returns ``(eigenvalues descending, vectors, residuals / scale, scale)``; ``scale`` is
    the largest Rayleigh quotient when not given (the top of the spectrum).
    """
    xp, _ = namespace_and_device(V)
    V = _orthonormal(xp, V)
    theta, V, W = rayleigh_ritz(V, F(V))
    res = _residuals(xp, V, W, theta)
    lam, V, res = xp.flip(theta, axis=0), xp.flip(V, axis=1), xp.flip(res, axis=0)
    if scale is None:
        scale = float(xp.max(theta))
    scale = scale if scale > 0 else 1.0
    return lam, V, [r / scale for r in _host_floats(xp, res)], scale


# -- power / orthogonal iteration ---------------------------------------------------------
def power_iteration(
    F: CountedOperator,
    V0: Any,
    *,
    shift: float = 0.0,
    scale: float | None = None,
    tol: float,
    max_iter: int,
    bar: Any = None,
) -> Pairs:
    r"""Orthogonal iteration on :math:`F - \sigma I` with a Rayleigh-Ritz step.

    .. math::

        W_i = F V_i, \quad H_i = V_i^\top W_i = Y \Theta Y^\top, \quad
        V_i \leftarrow V_i Y, \quad W_i \leftarrow W_i Y, \quad
        V_{i+1} R = W_i - \sigma V_i \ \text{(QR)}.

    ``shift = 0`` converges to the top of the spectrum, at the rate
    :math:`\lambda_{k+1}/\lambda_k`. ``shift`` :math:`= \sigma \ge \lambda_{\max}` makes the
    *smallest* eigenvalues of :math:`F` the dominant ones of :math:`F - \sigma I` (magnitude
    :math:`\sigma - \lambda`), at the rate
    :math:`(\sigma - \lambda_{n-k})/(\sigma - \lambda_{n-k+1})`, close to 1 on Fisher
    spectra. Every step, the first included, is on the shifted operator (plenoptic's
    unshifted first step multiplies the start by :math:`F` and so removes the null-space
    components the bottom run looks for). The Ritz values and the residuals
    :math:`\lVert W_i - V_i\Theta\rVert` come from the same product as the next step: one
    block product per iteration. Stops when every residual is below ``tol`` times
    :math:`\lambda_{\max}` (``scale``; the largest Ritz value when not given).
    """
    xp, _ = namespace_and_device(V0)
    V = _orthonormal(xp, V0)
    theta = W = res = None
    converged, it, lam_max = False, 0, 1.0
    for it in range(1, max_iter + 1):
        theta, V, W = rayleigh_ritz(V, F(V))
        res = _residuals(xp, V, W, theta)
        lam_max = scale if scale is not None else float(xp.max(theta))
        lam_max = lam_max if lam_max > 0 else 1.0
        worst = float(xp.max(res)) / lam_max
        _show(bar, f"residual {worst:.2e}")
        if worst <= tol:
            converged = True
            break
        if it < max_iter:
            V = _orthonormal(xp, W - shift * V)
    # the block holds exactly k Ritz pairs, ascending: decreasing order is the reverse
    rel = [r / lam_max for r in reversed(_host_floats(xp, res))]
    lam, vecs = xp.flip(theta, axis=0), xp.flip(V, axis=1)
    return Pairs(lam, vecs, rel, converged, F.n_products, it, lam_max)


# -- randomized SVD ---------------------------------------------------------------------------
def randomized_svd(
    F: CountedOperator,
    Omega: Any,
    k: int,
    *,
    q: int,
    probes: Any,
    tol: float,
    probe_operator: CountedOperator | None = None,
) -> Pairs:
    r"""Randomized range finder with power steps, then Rayleigh-Ritz (Halko et al. 2011).

    With :math:`\ell = k + p` Gaussian columns :math:`\Omega`:

    .. math::

        Q_0 = \operatorname{qr}(F\Omega), \quad Q_{j+1} = \operatorname{qr}(F Q_j)\
        (j < q), \quad B = Q^\top F Q = U \Theta U^\top, \quad V = Q U.

    The QR after every product keeps the small eigenvalues' directions from drowning in
    rounding (plenoptic multiplies q times without it). Since :math:`F` is symmetric
    positive semidefinite, the singular values of :math:`B` are its eigenvalues. Error
    estimate from r Gaussian probes :math:`\omega_i` (for Gaussian :math:`\omega`,
    :math:`E\lVert B\omega\rVert^2 = \lVert B\rVert_F^2`; Halko et al. Sec. 4.3):

    .. math::

        \frac{\lVert (I - QQ^\top) F \rVert_F}{\lVert F \rVert_F} \approx
        \Big(\frac{\sum_i \lVert (I - QQ^\top) F \omega_i \rVert^2}
        {\sum_i \lVert F \omega_i \rVert^2}\Big)^{1/2}

    (``extra["error_estimate"]``: the share of :math:`F` the sketch misses), next to
    plenoptic's absolute :math:`\operatorname{mean}_i \lVert (I - QQ^\top) F\omega_i\rVert`
    (``extra["error_estimate_absolute"]``). Cost: :math:`\ell (q + 2) + r` products (the
    probes through ``probe_operator`` when given, else through F).
    """
    xp, _ = namespace_and_device(Omega)
    Q = _orthonormal(xp, F(Omega))
    for _ in range(q):
        Q = _orthonormal(xp, F(Q))
    theta, V, W = rayleigh_ritz(Q, F(Q))
    res = _residuals(xp, V, W, theta)
    lam, vecs = _descending(xp, theta, V, k, top=True)
    j = theta.shape[0]
    lam_max = float(theta[j - 1])
    lam_max = lam_max if lam_max > 0 else 1.0
    res_host = _host_floats(xp, res)
    rel = [res_host[j - 1 - i] / lam_max for i in range(k)]
    G = F if probe_operator is None else probe_operator
    FG = G(probes)
    miss = xp.linalg.vector_norm(FG - Q @ (xp.matrix_transpose(Q) @ FG), axis=0)
    total = xp.linalg.vector_norm(FG, axis=0)
    relative = float(xp.sqrt(xp.sum(miss**2) / xp.sum(total**2)))
    extra = dict(error_estimate=relative, error_estimate_absolute=float(xp.mean(miss)))
    spent = F.n_products + (0 if G is F else G.n_products)
    return Pairs(lam, vecs, rel, max(rel) <= tol, spent, q, lam_max, extra)


# -- thick-restart block Lanczos (Krylov-Schur) ----------------------------------------------
#: checks (an O(j^3) decomposition of the j x j projected matrix) are at least
#: max(1, steps // CHECK_SPACING) steps apart, so that they cost O(j^3) in all
CHECK_SPACING = 32
#: a re-orthogonalisation pass that shrinks a column below this share of its norm is repeated
#: (Daniel, Gragg, Kaufman & Stewart 1976) ...
DGKS = 0.5
#: ... that is, when what it leaves is below this multiple of what it removes
REPEAT = DGKS / math.sqrt(1 - DGKS**2)
#: share of the basis a thick restart keeps (the Ritz vectors nearest the wanted end)
KEEP = 0.5
#: first capacity (columns) of the preallocated basis; it doubles when full, up to basis_size
FIRST_CAPACITY = 64


class KrylovSchur(NamedTuple):
    """What :func:`krylov_schur` returns: ``X`` (n, k) the wanted vectors, ``converged``,
    ``steps`` (block products), ``restarts``, ``checks`` (decompositions of the projected
    matrix) and ``estimate`` (the last residual estimate, relative to ``scale``)."""

    X: Any
    converged: bool
    steps: int
    restarts: int
    checks: int
    estimate: float


def krylov_schur(
    A: CountedOperator,
    X0: Any,
    k: int,
    *,
    which: str,
    tol: float,
    max_steps: int,
    basis_size: int,
    rng: Any,
    bar: Any = None,
    target: float | None = None,
    scale: float | None = None,
) -> KrylovSchur:
    r"""The k largest (``which="LA"``) or smallest (``"SA"``) eigenvectors of symmetric A.

    Block Lanczos with full re-orthogonalisation builds an orthonormal basis
    :math:`V = [Q_1, Q_2, \dots]` of the block Krylov space of ``X0`` (b columns per step,
    one batched product each):

    .. math::

        W = A Q_j, \quad C = V^\top W, \quad W \leftarrow W - V C, \quad
        Q_{j+1} R_j = W \ \text{(QR)}, \quad H = V^\top A V,

    so that :math:`A V = V H + Q_{j+1} R_j E_j^\top`. The three-term part (against
    :math:`Q_j` and :math:`Q_{j-1}`) is removed first; one classical Gram-Schmidt pass against
    the whole basis then only cleans rounding, and is repeated when it removed much (the
    cheap test of Daniel et al. 1976, from the norms at hand). The basis and :math:`H` live
    in preallocated arrays written in place (``backends.ops.assign``).

    **Extraction.** Ritz pairs :math:`H = Y \Theta Y^\top`, :math:`x_i = V y_i`, have
    residuals :math:`\lVert A x_i - \theta_i x_i \rVert = \lVert R_j\, y_i^{(j)} \rVert`
    (the last b entries of :math:`y_i`), known without a product. With a ``target``
    :math:`\tau`, the *refined* vectors are used instead (Jia 1997; Stewart, *Matrix
    Algorithms II*, Sec. 4.4): the unit :math:`x = V y` that minimise
    :math:`\lVert (A - \tau I) x \rVert = \lVert (\bar H - \tau \bar I) y \rVert`, with
    :math:`\bar H = [H;\ R_j E_j^\top]`, i.e. the right singular vectors of the k smallest
    singular values :math:`s_i`, which bound the residuals. For the bottom of a Fisher
    spectrum (:math:`A = \sigma I - F`, :math:`\tau = \sigma`) that is the Krylov vector
    with the smallest :math:`\lVert F x\rVert`: on a spectrum that decays smoothly to 0 its
    residual falls like :math:`1/j^2` and reaches a tolerance 3 to 9 times sooner than the
    Ritz vector's, whose residual is inflated by the many tiny eigenvalues it mixes
    (measured on plenoptic's ``Gaussian(3)``; docs/eigendistortion.md).

    **Checks.** The decomposition of the j x j matrix (``eigh``, or ``svd`` when refined)
    costs :math:`O(j^3)`, more than a step, so it is not done every step: the next check is
    placed where the residual, extrapolated from the last two checks as
    :math:`e^{-\rho\,t}` in the step count t, meets the tolerance (a residual that falls
    like a power of t falls slower than that: the check lands before the goal, not after), at
    least ``steps // CHECK_SPACING`` and at most ``steps // 2`` steps later.

    **Restarts.** When the basis is full (``basis_size`` columns), it is *thickly restarted*
    (Krylov-Schur, Stewart 2001): keep the half of the Ritz vectors on the wanted side,
    :math:`V \leftarrow V Y_{keep}`, :math:`H \leftarrow \Theta_{keep}`, and go on from
    :math:`Q_{j+1}`; their coupling to it, :math:`R_j Y^{(j)}_{keep}`, is recovered by the
    next :math:`C`. On the dense, clustered bottom of a Fisher spectrum every restart loses
    progress, so the bottom solve uses a long basis.

    Stops when every wanted residual (estimate) is at most ``tol`` times ``scale`` (default:
    the largest :math:`|\theta|` seen, or the largest singular value when refined), or after
    ``max_steps`` block products. The caller checks the vectors with a true product
    (:func:`verify`).
    """
    xp, dev = namespace_and_device(X0)
    n, b = X0.shape
    top = which == "LA"
    m = max(min(basis_size, n - b), k + b)
    eps = float(xp.finfo(X0.dtype).eps)
    basis = _Basis(xp, n, b, m, X0.dtype, dev)
    checks = _Schedule(tol)
    Q = _orthonormal(xp, X0)
    anorm, steps, restarts, n_checks, worst, converged = 0.0, 0, 0, 0, math.inf, False
    while True:
        W = A(Q)
        steps += 1
        with one_thread_per_op(Q):  # the solver's own small operations: backends/threads.py
            basis.append(Q)
            W, norms = basis.orthogonalise(W)
            Q, R = _qr(xp, W, norms)
            j = basis.size
            full = j + b > m
            done = steps >= max_steps or j + b > n - b
            if not (full or done or checks.due(steps)):
                Q = _deflate(xp, Q, R, basis, anorm * eps * 100, rng)
                continue
            n_checks += 1
            if target is None or full:
                theta, Y = xp.linalg.eigh(basis.projected())
                anorm = max(anorm, float(xp.max(xp.abs(theta))))
            if target is None:
                wanted = list(range(j - k, j)) if top else list(range(k))
                Yw = xp.take(Y, xp.asarray(wanted, dtype=xp.int64, device=dev), axis=1)
                est = xp.linalg.vector_norm(R @ Yw[j - b :, :], axis=0)
            else:
                Yw, est, s_max = _refined(xp, basis.shifted(R, target), k)
                anorm = max(anorm, s_max)
            worst = float(xp.max(est)) / (scale or anorm or 1.0)
            _show(bar, f"residual {worst:.2e}")
            if worst <= tol or done:
                converged = worst <= tol
                break
            checks.plan(steps, worst)
            if full:  # thick restart
                restarts += 1
                p = max(k, int((j - b) * KEEP))
                keep = list(range(j - p, j)) if top else list(range(p))
                ind = xp.asarray(keep, dtype=xp.int64, device=dev)
                basis.restart(xp.take(Y, ind, axis=1), xp.take(theta, ind, axis=0))
            Q = _deflate(xp, Q, R, basis, anorm * eps * 100, rng)
    return KrylovSchur(basis.combine(Yw), converged, steps, restarts, n_checks, worst)


def _refined(xp: Any, M: Any, k: int) -> tuple[Any, Any, float]:
    r"""The refined vectors of :math:`M = \bar H - \tau \bar I` ((j + b) x j), Rayleigh-Ritz
    among them, and the residuals of those pairs.

    ``Y`` (j, k): the right singular vectors of the k smallest singular values (the unit
    :math:`y` with the smallest :math:`\lVert M y\rVert`), rotated to the Ritz vectors of
    :math:`G = Y^\top M_{1:j} Y`, :math:`G Z = Z \operatorname{diag}(\mu)`; ``est``:
    :math:`\lVert M y_i - \mu_i \bar I y_i\rVert`, the residuals
    :math:`\lVert A x_i - (\tau + \mu_i) x_i\rVert` of :math:`x_i = V y_i`: near 0 whether
    the bottom is a near-null cluster (:math:`\mu \approx 0`) or an isolated eigenvalue
    (:math:`\mu` its distance to :math:`\tau`). Also the largest singular value."""
    j = M.shape[1]
    _, s, Vh = xp.linalg.svd(M, full_matrices=False)
    Y = xp.matrix_transpose(Vh[j - k :, :])
    MY = M @ Y
    mu, Z = xp.linalg.eigh(_sym(xp, xp.matrix_transpose(Y) @ MY[:j, :]))
    Y, MY = Y @ Z, MY @ Z
    gap = xp.concat([MY[:j, :] - Y * mu[None, :], MY[j:, :]], axis=0)
    return Y, xp.linalg.vector_norm(gap, axis=0), float(s[0])


class _Basis:
    r"""The Lanczos basis and the lower triangle of :math:`H = V^\top A V`, in preallocated
    arrays written in place; the capacity doubles when full, up to ``m`` (+ b) columns. The
    basis is stored transposed, ``Vt = V^T`` (one contiguous row per vector), so that the
    first j vectors are one contiguous block; a step writes rows of both arrays."""

    def __init__(self, xp: Any, n: int, b: int, m: int, dtype: Any, device: Any) -> None:
        self.xp, self.n, self.b, self.m, self.size = xp, n, b, m, 0
        self.dtype, self.device = dtype, device
        self._allocate(min(m + b, max(FIRST_CAPACITY, 4 * b)))

    def _allocate(self, cap: int) -> None:
        xp, j = self.xp, self.size
        Vt = xp.zeros((cap, self.n), dtype=self.dtype, device=self.device)
        H = xp.zeros((cap, cap), dtype=self.dtype, device=self.device)
        if j:
            Vt = assign(Vt, (slice(None, j), slice(None)), self.Vt[:j, :])
            H = assign(H, (slice(None, j), slice(None, j)), self.H[:j, :j])
        self.Vt, self.H, self.cap = Vt, H, cap

    def append(self, Q: Any) -> None:
        j, b = self.size, Q.shape[1]
        if j + b > self.cap:
            self._allocate(min(self.m + b, 2 * self.cap))
        self.Vt = assign(self.Vt, (slice(j, j + b), slice(None)), _rows(self.xp, Q))
        self.size = j + b

    def project(self, W: Any) -> Any:
        r""":math:`V^\top W` (j, b)."""
        return self.Vt[: self.size, :] @ W

    def combine(self, C: Any) -> Any:
        """:math:`V C` (n, b) on the first ``C.shape[0]`` vectors."""
        return self.xp.matrix_transpose(self.Vt[: C.shape[0], :]) @ C

    def orthogonalise(self, W: Any) -> tuple[Any, Any]:
        """``W - V C``, orthogonal to the basis, and its column norms; ``C = V^T W`` (W is
        ``A Q`` for the basis' last block Q) goes into the last row block of ``H``.

        The last two blocks first (the three-term recurrence: the large coefficients), then
        one classical Gram-Schmidt pass against the whole basis, which only cleans rounding;
        it is repeated when it removed much (orthogonality was lost): when the column it left
        is below ``DGKS`` of the column it started from, i.e. (Pythagoras) below
        ``DGKS / sqrt(1 - DGKS**2)`` of what it removed (Daniel et al. 1976)."""
        xp, j, b = self.xp, self.size, W.shape[1]
        V = self.Vt[:j, :]
        lo = max(0, j - 2 * b)
        c_local = V[lo:, :] @ W
        W = W - xp.matrix_transpose(V[lo:, :]) @ c_local
        C = None
        for _ in range(3):
            c = V @ W
            W = W - xp.matrix_transpose(V) @ c
            C = c if C is None else C + c
            norms = xp.linalg.vector_norm(W, axis=0)
            if bool(xp.all(norms > REPEAT * xp.linalg.vector_norm(c, axis=0))):
                break
        C = assign(C, (slice(lo, None), slice(None)), C[lo:, :] + c_local)
        self.H = assign(self.H, (slice(j - b, j), slice(None, j)), _rows(xp, C))
        return W, norms

    def projected(self) -> Any:
        r""":math:`H` (j, j), symmetric, from its stored lower triangle."""
        xp, H = self.xp, self.H[: self.size, : self.size]
        return xp.tril(H) + xp.matrix_transpose(xp.tril(H, k=-1))

    def shifted(self, R: Any, tau: float) -> Any:
        r""":math:`\bar H - \tau \bar I` (j + b, j): :math:`H - \tau I` over
        :math:`R_j E_j^\top`."""
        xp, j, b = self.xp, self.size, R.shape[0]
        eye = xp.eye(j, dtype=self.dtype, device=self.device)
        last = xp.concat([xp.zeros((b, j - b), dtype=self.dtype, device=self.device), R], axis=1)
        return xp.concat([self.projected() - tau * eye, last], axis=0)

    def restart(self, Y: Any, theta: Any) -> None:
        r""":math:`V \leftarrow V Y`, :math:`H \leftarrow \operatorname{diag}(\theta)`."""
        xp, p = self.xp, Y.shape[1]
        Zt = xp.matrix_transpose(Y) @ self.Vt[: self.size, :]
        self.Vt = assign(self.Vt, (slice(None, p), slice(None)), Zt)
        self.H = assign(self.H, (slice(None, p), slice(None, p)), _diag(xp, theta))
        self.size = p


class _Schedule:
    """When :func:`krylov_schur` next decomposes its projected matrix (see there)."""

    def __init__(self, tol: float) -> None:
        self.tol, self.next, self.last = tol, 1, None

    def due(self, steps: int) -> bool:
        return steps >= self.next

    def plan(self, steps: int, worst: float) -> None:
        low, high = max(1, steps // CHECK_SPACING), max(1, steps // 2)
        gap = low
        if self.last is not None:
            t0, w0 = self.last
            if 0 < worst < w0:  # the rate per step of the last stretch, extrapolated
                rate = math.log(w0 / worst) / (steps - t0)
                gap = min(max(math.ceil(math.log(worst / self.tol) / rate), low), high)
            else:  # no progress (a plateau, or the rounding floor): look less often
                gap = max(low, steps // 8)
        self.last, self.next = (steps, worst), steps + gap


def _rows(xp: Any, Q: Any) -> Any:
    """``Q^T``, to be written as rows (one column: a reshape, which torch copies several
    times faster than the transposed view)."""
    if Q.shape[1] == 1:
        return xp.reshape(Q, (1, Q.shape[0]))
    return xp.matrix_transpose(Q)


def _qr(xp: Any, W: Any, norms: Any) -> tuple[Any, Any]:
    """QR of ``W`` whose column norms are known: one column is just normalised."""
    if W.shape[1] == 1:
        return W / norms, xp.reshape(norms, (1, 1))
    return xp.linalg.qr(W)


def _diag(xp: Any, d: Any) -> Any:
    p = d.shape[0]
    return xp.eye(p, dtype=d.dtype, device=d.device) * d[None, :]


def _deflate(xp: Any, Q: Any, R: Any, basis: _Basis, small: float, rng: Any) -> Any:
    """A direction of the new block with a vanishing ``R`` column means the Krylov space is
    (numerically) invariant there: QR's column is then arbitrary, so it is replaced by a
    random direction orthogonal to the basis (Lanczos goes on in a fresh direction)."""
    if R.shape[0] == 1 and abs(float(R[0, 0])) > small:  # one column: no device work
        return Q
    tiny = xp.abs(xp.linalg.diagonal(R)) <= small
    if not bool(xp.any(tiny)):
        return Q
    Z = rng.normal(Q.shape, dtype=Q.dtype)
    Q = xp.where(tiny[None, :], Z, Q)
    for _ in range(2):
        Q = Q - basis.combine(basis.project(Q))
    return _orthonormal(xp, Q)


# -- Lanczos through scipy / cupyx -----------------------------------------------------------
def arpack(A: CountedOperator, k: int, *, which: str, tol: float, max_iter: int, seed: int):
    """``backends.linalg.eigsh`` on ``A`` (ARPACK on the host, cupyx on a GPU).

    Raises NotImplementedError (no route for these arrays), ImportError (cupy missing) or
    RuntimeError (no convergence within ``max_iter`` restarts); the caller falls back to
    :func:`krylov_schur`. Returns the k eigenvectors (n, k).
    """

    xp, _ = namespace_and_device(A.like)
    n = A.n

    def matvec(v: Any) -> Any:
        if v.ndim == 1:
            return xp.reshape(A(xp.reshape(v, (n, 1))), (n,))
        return A(v)

    _, X = linalg.eigsh(
        matvec, n, k, like=A.like, which=which, seed=seed, tol=tol, maxiter=max_iter
    )
    return X


# -- dense ---------------------------------------------------------------------------------------
def dense_matrix(F: CountedOperator, chunk: int = 256) -> Any:
    """:math:`F` (n, n) from products with the unit vectors, ``chunk`` at a time."""
    xp, dev = namespace_and_device(F.like)
    n = F.n
    cols = []
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        E = xp.eye(n, c, k=-start, dtype=F.like.dtype, device=dev)  # e_start .. e_start+c-1
        cols.append(F(E))
    return _sym(xp, xp.concat(cols, axis=1))


def dense_pairs(F: CountedOperator, k: int) -> tuple[Pairs, Pairs]:
    """The k largest and k smallest pairs of the explicitly built :math:`F` (small n)."""
    xp, _ = namespace_and_device(F.like)
    M = dense_matrix(F)
    theta, Y = xp.linalg.eigh(M)
    lam_max = float(xp.max(theta))
    lam_max = lam_max if lam_max > 0 else 1.0
    out = []
    for top in (True, False):
        lam, V = _descending(xp, theta, Y, k, top=top)
        res = xp.linalg.vector_norm(M @ V - V * lam[None, :], axis=0)
        rel = [r / lam_max for r in _host_floats(xp, res)]
        out.append(Pairs(lam, V, rel, True, F.n_products, 0, lam_max, dict(solver="dense")))
    return out[0], out[1]


def _show(bar: Any, text: str) -> None:
    """``text`` (the residual) as the postfix of the progress bar, when there is one (the
    bar's count is the operator's: ``CountedOperator``)."""
    if bar is not None:
        bar.set_postfix_str(text)
