"""The bridge to scipy's solvers: ``backends.linalg.eigsh`` against dense ``eigh``."""

from __future__ import annotations

import numpy as np
import pytest

from backends import linalg


def _sym(n: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, n))
    return a @ a.T / n


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_eigsh_matches_dense_eigh(backend, which):
    n, k = 30, 3
    a = _sym(n, 0)
    A = backend.asarray(a, dtype="float64")
    if backend.name not in ("numpy", "torch") or "cuda" in str(backend.device):
        with pytest.raises(NotImplementedError, match="no Lanczos route"):
            linalg.eigsh(lambda v: A @ v, n, k, like=A, which=which)
        return
    w, V = linalg.eigsh(lambda v: A @ v, n, k, like=A, which=which)
    backend.assert_same_place(w, A.dtype)
    backend.assert_same_place(V, A.dtype)
    ref = np.linalg.eigvalsh(a)
    expect = {"LA": ref[-k:], "SA": ref[:k], "LM": np.sort(ref[np.argsort(-abs(ref))[:k]])}[which]
    np.testing.assert_allclose(backend.to_numpy(w), expect, rtol=1e-10, atol=1e-12)
    Vn = backend.to_numpy(V)
    np.testing.assert_allclose(a @ Vn, Vn * backend.to_numpy(w), atol=1e-9)
    # reproducible: the start vector comes from the seed
    w2, _ = linalg.eigsh(lambda v: A @ v, n, k, like=A, which=which)
    np.testing.assert_array_equal(backend.to_numpy(w2), backend.to_numpy(w))


def test_eigsh_bad_input():
    A = np.eye(4)
    with pytest.raises(ValueError, match="which must be one of"):
        linalg.eigsh(lambda v: v, 4, 1, like=A, which="BE")
    with pytest.raises(ValueError, match="1 <= k < n=4"):
        linalg.eigsh(lambda v: v, 4, 4, like=A)
