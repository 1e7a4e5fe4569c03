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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backends import linalg, namespace_and_device

__all__ = [
    "CountedOperator",
    "Pairs",
    "arpack",
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
    """``apply`` with a count of the vectors it has been applied to (``n_products``), also
    added to the progress bar ``bar`` when one is given (a bar then counts every product,
    those of ARPACK and of the final check included)."""

    def __init__(self, apply: Callable[[Any], Any], n: int, like: Any, *, bar: Any = None) -> None:
        self._apply, self.n, self.like, self.bar = apply, n, like, bar
        self.n_products = 0

    def __call__(self, V: Any) -> Any:
        self.n_products += V.shape[1]
        if self.bar is not None:
            self.bar.update(V.shape[1])
        return self._apply(V)


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
    (``extra["error_estimate_absolute"]``). Cost: :math:`\ell (q + 2) + r` products.
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
    FG = F(probes)
    miss = xp.linalg.vector_norm(FG - Q @ (xp.matrix_transpose(Q) @ FG), axis=0)
    total = xp.linalg.vector_norm(FG, axis=0)
    relative = float(xp.sqrt(xp.sum(miss**2) / xp.sum(total**2)))
    extra = dict(error_estimate=relative, error_estimate_absolute=float(xp.mean(miss)))
    return Pairs(lam, vecs, rel, max(rel) <= tol, F.n_products, q, lam_max, extra)


# -- thick-restart block Lanczos (Krylov-Schur) ----------------------------------------------
#: a residual check (an eigh of the j x j projected matrix) every max(1, j // CHECK_SPACING)
#: steps: checks then cost O(j^3) in all, and stopping is late by at most 1/CHECK_SPACING
CHECK_SPACING = 32
#: a re-orthogonalisation pass that shrinks a column below this share of its norm is repeated
#: (Daniel, Gragg, Kaufman & Stewart 1976)
DGKS = 0.5


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
) -> tuple[Any, bool, int, int]:
    r"""The k largest (``which="LA"``) or smallest (``"SA"``) eigenvectors of symmetric A.

    Block Lanczos with full re-orthogonalisation builds an orthonormal basis
    :math:`V = [Q_1, Q_2, \dots]` of the block Krylov space of ``X0`` (b columns per step,
    one batched product each):

    .. math::

        W = A Q_j, \quad C = V^\top W, \quad W \leftarrow W - V C, \quad
        Q_{j+1} R_j = W \ \text{(QR)}, \quad H = V^\top A V,

    so that :math:`A V = V H + Q_{j+1} R_j E_j^\top`. (The three-term part, against
    :math:`Q_j` and :math:`Q_{j-1}`, is removed first; the full pass then only cleans
    rounding, and is repeated when it removes much.) The Ritz pairs
    :math:`H = Y \Theta Y^\top`, :math:`x_i = V y_i` have residuals
    :math:`\lVert A x_i - \theta_i x_i \rVert = \lVert R_j\, y_i^{(j)} \rVert` (the last b
    entries of :math:`y_i`), known without a product. When the basis is full, it is
    *thickly restarted* (Krylov-Schur): keep the half of the Ritz vectors on the wanted side,
    :math:`V \leftarrow V Y_{keep}`, :math:`H \leftarrow \Theta_{keep}`, and go on from
    :math:`Q_{j+1}`; their coupling to it, :math:`R_j Y^{(j)}_{keep}`, is recovered by the
    next :math:`C`. On the dense, clustered bottom of a Fisher spectrum every restart loses
    progress, so the bottom solve uses a long basis (ARPACK's default of 20 vectors, restarted
    implicitly, needs 10x more products there; docs/eigendistortion.md).

    Stops when every wanted residual is at most ``tol`` times the largest :math:`|\theta|`
    seen, or after ``max_steps`` block products. Returns ``(X, converged, steps, restarts)``
    with ``X`` (n, k) the wanted Ritz vectors; the caller checks them with a true product
    (:func:`verify`).
    """
    xp, _ = namespace_and_device(X0)
    n, b = X0.shape
    top = which == "LA"
    m = max(min(basis_size, n - b), k + b)
    eps = float(xp.finfo(X0.dtype).eps)
    Q, prev = _orthonormal(xp, X0), None
    V, H = _Basis(xp), None
    anorm, steps, restarts, last_check, converged = 0.0, 0, 0, 0, False
    while True:
        W = A(Q)
        steps += 1
        V.append(Q)
        W, C = _orthogonalise(xp, V, W, Q, prev)
        H = _grow(xp, H, C)
        prev, (Q, R) = Q, xp.linalg.qr(W)
        j = V.size
        full = j + b > m
        done = steps >= max_steps or j + b > n - b
        if not (full or done or steps - last_check >= max(1, j // CHECK_SPACING)):
            continue
        last_check = steps
        theta, Y = xp.linalg.eigh(H)
        anorm = max(anorm, float(xp.max(xp.abs(theta))))
        wanted = list(range(j - k, j)) if top else list(range(k))
        Yw = xp.take(Y, xp.asarray(wanted, dtype=xp.int64, device=Y.device), axis=1)
        est = xp.linalg.vector_norm(R @ Yw[j - b :, :], axis=0)
        worst = float(xp.max(est)) / (anorm if anorm > 0 else 1.0)
        _show(bar, f"residual {worst:.2e}")
        if worst <= tol or done:
            converged = worst <= tol
            break
        if full:  # thick restart
            restarts += 1
            p = max(k, (j - b) // 2)
            keep = list(range(j - p, j)) if top else list(range(p))
            ind = xp.asarray(keep, dtype=xp.int64, device=Y.device)
            V.rotate(xp.take(Y, ind, axis=1))
            H = _diag(xp, xp.take(theta, ind, axis=0))
            prev = None
        Q = _deflate(xp, Q, R, V, anorm * eps * 100, rng)
    return V.combine(Yw), converged, steps, restarts


class _Basis:
    """The Lanczos basis as a list of column chunks (appending copies one chunk, not all)."""

    CHUNK = 64

    def __init__(self, xp: Any) -> None:
        self.xp, self.chunks, self.size = xp, [], 0

    def append(self, Q: Any) -> None:
        xp = self.xp
        if self.chunks and self.chunks[-1].shape[1] + Q.shape[1] <= self.CHUNK:
            self.chunks[-1] = xp.concat([self.chunks[-1], Q], axis=1)
        else:
            self.chunks.append(Q)
        self.size += Q.shape[1]

    def project(self, W: Any) -> Any:
        r""":math:`V^\top W` (j, b)."""
        xp = self.xp
        return xp.concat([xp.matrix_transpose(c) @ W for c in self.chunks], axis=0)

    def combine(self, C: Any) -> Any:
        """:math:`V C` (n, b)."""
        out, row = None, 0
        for c in self.chunks:
            part = c @ C[row : row + c.shape[1], :]
            out = part if out is None else out + part
            row += c.shape[1]
        return out

    def rotate(self, Y: Any) -> None:
        r""":math:`V \leftarrow V Y` (thick restart)."""
        Z = self.combine(Y)
        self.chunks, self.size = [], 0
        for start in range(0, Z.shape[1], self.CHUNK):
            self.append(Z[:, start : min(start + self.CHUNK, Z.shape[1])])


def _orthogonalise(xp: Any, V: _Basis, W: Any, Q: Any, prev: Any) -> tuple[Any, Any]:
    """``W - V C`` orthogonal to the basis (which ends with ``Q``), and ``C = V^T A Q``."""
    j, b = V.size, Q.shape[1]
    local = [Q] if prev is None else [prev, Q]
    coefs = []
    for B in local:  # the three-term recurrence: against Q_{j-1} and Q_j
        c = xp.matrix_transpose(B) @ W
        W = W - B @ c
        coefs.append(c)
    zeros = xp.zeros((j - b * len(local), b), dtype=W.dtype, device=W.device)
    C = xp.concat([zeros, *coefs], axis=0)
    for _ in range(3):  # full passes, until one leaves the norms alone
        before = xp.linalg.vector_norm(W, axis=0)
        c = V.project(W)
        W = W - V.combine(c)
        C = C + c
        after = xp.linalg.vector_norm(W, axis=0)
        if (
            float(xp.min(after / xp.clip(before, float(xp.finfo(W.dtype).smallest_normal), None)))
            > DGKS
        ):
            break
    return W, C


def _grow(xp: Any, H: Any, C: Any) -> Any:
    """``H`` (j-b, j-b) bordered by the new block's coefficients ``C`` (j, b)."""
    j, b = C.shape
    if H is None:
        return _sym(xp, C)
    top_right = C[: j - b, :]
    corner = _sym(xp, C[j - b :, :])
    upper = xp.concat([H, top_right], axis=1)
    lower = xp.concat([xp.matrix_transpose(top_right), corner], axis=1)
    return xp.concat([upper, lower], axis=0)


def _diag(xp: Any, d: Any) -> Any:
    p = d.shape[0]
    return xp.eye(p, dtype=d.dtype, device=d.device) * d[None, :]


def _deflate(xp: Any, Q: Any, R: Any, V: Any, small: float, rng: Any) -> Any:
    """A direction of the new block with a vanishing ``R`` column means the Krylov space is
    (numerically) invariant there: QR's column is then arbitrary, so it is replaced by a
    random direction orthogonal to the basis (Lanczos goes on in a fresh direction)."""
    d = xp.abs(xp.linalg.diagonal(R))
    tiny = d <= small
    if not bool(xp.any(tiny)):
        return Q
    Z = rng.normal(Q.shape, dtype=Q.dtype)
    Q = xp.where(tiny[None, :], Z, Q)
    for _ in range(2):
        Q = Q - V.combine(V.project(Q))
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
