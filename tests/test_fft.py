"""backends.fft: the native route of each library equals the array API's fft extension."""

from __future__ import annotations

import numpy as np
import pytest

from backends import fft
from tests.conftest import tol


@pytest.mark.parametrize("s", [(8, 8), (9, 12), (5, 6)])
def test_native_route_matches_the_standard(backend, dtype, s):
    a = np.random.default_rng(0).standard_normal((3, 2, 6, 7))
    x = backend.asarray(a, dtype=dtype)
    X = fft.rfftn(x, s=s, axes=(-2, -1))
    X_std = fft.rfftn(x, s=s, axes=(-2, -1), native=False)
    backend.assert_same_place(X)
    t = tol(backend.dtype_name(dtype))
    np.testing.assert_allclose(
        backend.to_numpy(X), backend.to_numpy(X_std), rtol=t["rtol"] * 10, atol=t["atol"] * 10
    )
    ref = np.fft.rfftn(a, s=s, axes=(-2, -1))
    np.testing.assert_allclose(backend.to_numpy(X), ref, rtol=1e-4, atol=1e-4)
    back = fft.irfftn(X, s=s, axes=(-2, -1))
    backend.assert_same_place(back, dtype)
    np.testing.assert_allclose(
        backend.to_numpy(back),
        backend.to_numpy(fft.irfftn(X, s=s, axes=(-2, -1), native=False)),
        **t,
    )
    if s[0] >= 6 and s[1] >= 7:  # zero-extension then the inverse gives the input back
        np.testing.assert_allclose(backend.to_numpy(back)[..., :6, :7], a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("batch", [(0,), (2, 0), (0, 3)])
def test_empty_batches_transform_to_empty_arrays(backend, dtype, native, batch):
    """A batch with no images (torch's MKL refuses it) gives the empty transform of the right
    shape and dtype on every route, and back."""
    x = backend.xp.zeros((*batch, 6, 7), dtype=dtype, device=backend.device)
    X = fft.rfftn(x, s=(9, 8), axes=(-2, -1), native=native)
    full = fft.rfftn(
        backend.xp.zeros((6, 7), dtype=dtype, device=backend.device), s=(9, 8), axes=(-2, -1)
    )
    assert tuple(X.shape) == (*batch, 9, 5) and X.dtype == full.dtype
    backend.assert_same_place(X)
    back = fft.irfftn(X, s=(9, 8), axes=(-2, -1), native=native)
    assert tuple(back.shape) == (*batch, 9, 8)
    backend.assert_same_place(back, dtype)
