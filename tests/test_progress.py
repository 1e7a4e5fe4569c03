"""Progress bars (``backends.progress``) and the loops that show them.

Eigendistortion bars count every Fisher product of a solve (checked against a model that
counts its own VJPs), with an unknown total instead of ``max_iter * k``, and end at 100%
when the solve converges. ``perturbed`` and ``NoiseTunnel`` (``progress=None``, the
default) show a bar only once a call has run ``backends.progress.DELAY`` seconds: a slow
call shows one that ends at its number of samples or chunks, a fast one prints nothing.
``progress=False`` never makes a bar. Bars are captured by replacing ``tqdm.auto.tqdm``
with a subclass that records them.
"""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
import pytest
import tqdm.auto
import tqdm.std

import backends.progress as bp
from refimpl import attr as ra
from refimpl import models as rm
from refimpl.eigendistortion import Eigendistortion
from refimpl.perturbed import argmax_one_hot, perturbed
from tests.conftest import arr


@pytest.fixture
def bars(monkeypatch):
    """The tqdm bars made during the test: each records ``made_total`` (its total when made)
    and ``closed`` (``(n, total)`` when closed); they print to a string, not to stderr."""
    made = []

    class Recording(tqdm.std.tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = io.StringIO()
            super().__init__(*args, **kwargs)
            self.made_total, self.closed = self.total, None
            made.append(self)

        def close(self):
            if self.closed is None:
                self.closed = (self.n, self.total)
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    return made


# -- backends.progress ------------------------------------------------------------------------
def test_disabled_bar_makes_no_tqdm(bars):
    bar = bp.progress_bar(10, enabled=False, desc="off")
    for _ in range(10):
        bar.update(1)
    bar.set_postfix_str("x")
    bar.complete()
    bar.close()
    assert bars == []


def test_delayed_bar_appears_only_after_the_delay(bars):
    fast = bp.progress_bar(10, enabled=None, desc="fast", delay=60.0)
    for _ in range(10):
        fast.update(1)
    fast.close()
    assert bars == [] and fast.n == 10
    slow = bp.progress_bar(4, enabled=None, desc="slow", unit="chunk", delay=0.3)
    slow.update(1)
    assert bars == []  # before the delay: nothing shown yet
    time.sleep(0.35)
    slow.set_postfix_str("after the wait")
    slow.update(1)
    assert len(bars) == 1 and bars[0].n == 2  # the work done before it appeared is counted
    assert bars[0].format_dict["elapsed"] >= 0.3  # and the time it took
    slow.update(2)
    slow.close()
    assert bars[0].closed == (4, 4) and bars[0].made_total == 4
    assert "after the wait" in bars[0].postfix


def test_unknown_total_completes_at_its_count(bars):
    bar = bp.progress_bar(None, enabled=True, desc="solve", unit="Fv")
    assert len(bars) == 1 and bars[0].made_total is None  # shown at once, no total
    for _ in range(7):
        bar.update(3)
    bar.complete()
    bar.close()
    assert bars[0].closed == (21, 21)  # reads 100%


# -- eigendistortion ----------------------------------------------------------------------------
class CountingModel:
    """A model of the derivative protocol that counts the vectors of its VJPs: one per
    Fisher product ``F v = J^T (J v)``."""

    def __init__(self, inner, y_ndim):
        self.inner, self.y_ndim, self.vectors = inner, y_ndim, 0

    def __call__(self, x):
        return self.inner(x)

    def jvp(self, x, v):
        return self.inner.jvp(x, v)

    def vjp(self, x, u):
        self.vectors += u.shape[0] if u.ndim > self.y_ndim else 1
        return self.inner.vjp(x, u)


def linear_case(backend, N=16, M=48):
    """y = W x on a (1, 1, N, N) image, W (M, N^2) with singular values 1, 0.7, 0.5, 0.35 and
    0.3 .. 0.2 (a separated top, a null space of dimension N^2 - M at the bottom)."""
    r = np.random.default_rng(0)
    U, _ = np.linalg.qr(r.standard_normal((M, M)))
    V, _ = np.linalg.qr(r.standard_normal((N * N, M)))
    s = np.concatenate([[1.0, 0.7, 0.5, 0.35], np.linspace(0.3, 0.2, M - 4)])
    inner = rm.Sequential(rm.Flatten(3), rm.Linear(arr(backend, (U * s) @ V.T)))
    image = arr(backend, r.uniform(0.1, 0.9, (1, 1, N, N)))
    return image, CountingModel(inner, inner(image).ndim)


@pytest.mark.parametrize("lanczos", ["auto", "krylov_schur"])
def test_eigsh_bars_count_every_fisher_product_and_end_at_100(backend, bars, lanczos):
    image, model = linear_case(backend)
    eig = Eigendistortion(image, model)
    model.vectors = 0  # products from here on
    eig.synthesize("eigsh", k=2, rng=0, lanczos=lanczos, progress=True)
    top, bottom = bars
    assert top.desc == "Top k=2 eigendists" and bottom.desc == "Bottom k=2 eigendists"
    for bar, end in ((top, "top"), (bottom, "bottom")):
        info = eig.convergence[end]
        assert info["converged"]
        assert bar.made_total is None  # not max_iter * k (2000): a solve stops long before
        n, total = bar.closed
        assert n == total == info["n_products"] < 1000  # closed at 100%
        assert "residual" in bar.postfix
    assert top.closed[0] + bottom.closed[0] == model.vectors  # every product, counted once


def test_power_bar_of_an_unconverged_solve_counts_without_a_total(backend, bars):
    image, model = linear_case(backend)
    eig = Eigendistortion(image, model)
    model.vectors = 0
    with pytest.warns(UserWarning, match="did not converge"):  # 5 iterations: too few
        eig.synthesize("power", k=3, max_iter=5, rng=0, progress=True)
    assert [b.closed for b in bars] == [(15, None), (15, None)]  # 5 block products of 3
    assert model.vectors == 30


def test_eigendistortion_without_progress_makes_no_bar(backend, bars, capfd):
    image, model = linear_case(backend)
    Eigendistortion(image, model).synthesize("eigsh", rng=0, progress=False)
    assert bars == [] and capfd.readouterr().err == ""


# -- perturbed and NoiseTunnel: a bar only for calls that run long ---------------------------
def sleepy_argmax(delay):
    def slow_argmax(x):
        time.sleep(delay)
        return argmax_one_hot(x)

    return slow_argmax


def test_slow_perturbed_call_shows_a_bar_of_its_samples(backend, bars, monkeypatch):
    monkeypatch.setattr(bp, "DELAY", 0.05)  # "slow": more than 0.05 s
    theta = arr(backend, np.zeros((2, 3)))
    p = perturbed(sleepy_argmax(0.03), num_samples=12, sigma=0.5, rng=0, chunk_size=3)
    p(theta)
    assert len(bars) == 1
    assert bars[0].desc == "perturbed slow_argmax" and bars[0].closed == (12, 12)
    q = perturbed(
        sleepy_argmax(0.03), num_samples=12, sigma=0.5, rng=0, chunk_size=3, progress=False
    )
    q(theta)
    assert len(bars) == 1  # progress=False: never a bar


def test_fast_perturbed_call_prints_nothing(backend, capfd):
    theta = arr(backend, np.zeros((2, 3)))
    p = perturbed(argmax_one_hot, num_samples=100, sigma=0.5, rng=0)  # default progress=None
    t0 = time.perf_counter()
    p(theta)
    assert time.perf_counter() - t0 < bp.DELAY
    assert capfd.readouterr().err == ""
    perturbed(argmax_one_hot, num_samples=100, sigma=0.5, rng=0, progress=True)(theta)
    assert "perturbed argmax_one_hot" in capfd.readouterr().err  # True: shown at once


def test_bar_is_closed_when_the_call_fails(backend, bars):
    def failing(x):
        raise RuntimeError("solver failed")

    theta = arr(backend, np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="solver failed"):
        perturbed(failing, num_samples=10, sigma=0.5, rng=0, progress=True)(theta)
    assert len(bars) == 1 and bars[0].closed == (0, 10)


class SleepyIdentity:
    """An "attribution" that sleeps, then returns its (noisy) inputs; counts its calls."""

    multiplies_by_inputs = False

    def __init__(self, delay):
        self.delay, self.calls = delay, 0

    def attribute(self, inputs, **kwargs):
        self.calls += 1
        time.sleep(self.delay)
        return inputs


def test_slow_noise_tunnel_call_shows_a_bar_of_its_chunks(backend, bars, monkeypatch):
    monkeypatch.setattr(bp, "DELAY", 0.05)
    x = arr(backend, np.ones((2, 3)))
    method = SleepyIdentity(0.03)
    ra.NoiseTunnel(method).attribute(x, nt_samples=8, nt_samples_batch_size=2, rng=0)
    assert method.calls == 4
    assert len(bars) == 1
    assert bars[0].desc == "noise tunnel" and bars[0].closed == (4, 4)
    ra.NoiseTunnel(method).attribute(
        x, nt_samples=8, nt_samples_batch_size=2, rng=0, progress=False
    )
    assert len(bars) == 1  # progress=False: never a bar


def test_fast_noise_tunnel_call_prints_nothing(backend, capfd):
    x = arr(backend, np.ones((2, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ra.NoiseTunnel(SleepyIdentity(0.0)).attribute(x, nt_samples=8, rng=0)
    assert capfd.readouterr().err == ""
