"""One fixture runs every test on every backend, device and floating dtype.

``backend`` is parametrised over numpy, torch (CPU and CUDA), cupy and array_api_strict on
its non-default device ``device1`` with the strictest flags (no boolean indexing, no
data-dependent shapes, API 2024.12): the stand-in for "not numpy, not the default device".
GPU parameters are always collected and skip with a reason when no GPU is present.

Select with ``pytest --backend numpy,strict`` (ids or library names; ``all``: every
column). ``dtype`` gives the backend's float32 and float64.

The jax column is opt-in (``--backend jax`` or ``all``): XLA compiles every operation once
per new shape (0.1 to 0.7 s each, measured), and refimpl's eager loops and hypothesis's
varying shapes meet a new shape at almost every step, so the whole suite takes about an
hour on jax against minutes elsewhere. ``tests/test_jax_backend.py`` always runs when jax
is installed, and the conformance suite has a jax column by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: (id, backend name, device)
PARAMS = [
    ("numpy", "numpy", None),
    ("torch-cpu", "torch", "cpu"),
    ("torch-cuda", "torch", "cuda"),
    ("strict-device1", "array_api_strict", "device1"),
    ("cupy", "cupy", None),
    ("jax", "jax", None),
]

#: columns that run only when asked for by ``--backend`` (see the module docstring)
OPT_IN = {"jax"}

STRICTEST = dict(api_version="2024.12", boolean_indexing=False, data_dependent_shapes=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="store",
        default=os.environ.get("REFIMPL_TEST_BACKENDS", ""),
        help="comma-separated backend ids or names to test, or 'all' (default: all but "
        + ", ".join(sorted(OPT_IN))
        + "): "
        + ", ".join(p[0] for p in PARAMS),
    )


def _selected(config: pytest.Config) -> list[tuple[str, str, Any]]:
    raw = config.getoption("--backend")
    if not raw:
        return [p for p in PARAMS if p[0] not in OPT_IN]
    if raw.strip() == "all":
        return PARAMS
    wanted = {w.strip() for w in raw.split(",") if w.strip()}
    aliases = {"strict": "array_api_strict", "torch": "torch"}
    wanted |= {aliases.get(w, w) for w in wanted}
    chosen = [p for p in PARAMS if p[0] in wanted or p[1] in wanted]
    if not chosen:
        raise pytest.UsageError(f"--backend {raw!r} matches none of {[p[0] for p in PARAMS]}")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        params = _selected(metafunc.config)
        metafunc.parametrize(
            "backend", [pytest.param(p, id=p[0]) for p in params], indirect=True, scope="function"
        )


@dataclass
class BackendUnderTest:
    """What a test receives: the adapter, its namespace, the device, and helpers."""

    id: str
    adapter: Any
    xp: Any
    device: Any

    @property
    def name(self) -> str:
        return self.adapter.name

    def asarray(self, obj: Any, dtype: Any = None) -> Any:
        return self.adapter.asarray(obj, dtype=dtype, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self.adapter.to_numpy(x)

    def dtype(self, name: str) -> Any:
        return self.adapter.dtype(name)

    def dtype_name(self, dtype: Any) -> str:
        return self.adapter.dtype_name(dtype)

    def assert_same_place(self, out: Any, dtype: Any = None) -> None:
        """``out`` is an array of this backend's namespace, on its device (and dtype)."""
        import array_api_compat

        assert array_api_compat.array_namespace(out) is self.xp, (
            f"output namespace {array_api_compat.array_namespace(out)} is not {self.xp}"
        )
        assert array_api_compat.device(out) == self.device, (
            f"output on {array_api_compat.device(out)!r}, expected {self.device!r}"
        )
        if dtype is not None:
            assert out.dtype == dtype, f"output dtype {out.dtype}, expected {dtype}"


@pytest.fixture
def backend(request: pytest.FixtureRequest):
    import backends

    bid, name, dev = request.param
    adapter = backends.registry.ADAPTERS[name]
    reason = adapter.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    if name == "torch" and dev == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("torch sees no CUDA device on this machine")
    xp = adapter.xp
    if name == "array_api_strict":
        xp.set_array_api_strict_flags(**STRICTEST)
    try:
        yield BackendUnderTest(bid, adapter, xp, adapter.device(dev))
    finally:
        if name == "array_api_strict":
            xp.reset_array_api_strict_flags()
            xp.set_array_api_strict_flags(api_version=adapter.api_version)


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest, backend: BackendUnderTest) -> Any:
    """The backend's dtype object for float32 / float64."""
    return backend.dtype(request.param)


def tol(dtype_name: str) -> dict[str, float]:
    """Tolerances for comparing a backend's result with a float64 numpy reference."""
    return {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}[
        dtype_name
    ]


def has_dtype(backend: BackendUnderTest, name: str) -> bool:
    """Whether the backend's namespace has the dtype ``name`` (array_api_strict has no 16-bit
    floats, numpy no bfloat16)."""
    return getattr(backend.xp, name, None) is not None


def arr(backend: BackendUnderTest, values: Any, dtype: str = "float64") -> Any:
    """``values`` as an array of the backend in ``dtype``; skips when it has no such dtype."""
    if not has_dtype(backend, dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    return backend.asarray(np.asarray(values, dtype=np.float64), dtype=dtype)


def as64(backend: BackendUnderTest, x: Any) -> np.ndarray:
    """A float64 (complex128 for complex input) numpy copy; bfloat16 goes through float32."""
    xp = backend.xp
    if backend.name == "torch" and x.dtype == xp.bfloat16:
        x = xp.astype(x, xp.float32)
    a = backend.to_numpy(x)
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


#: torch devices for torch-only tests (front ends, as_model): parametrise over these, not over
#: every backend. CUDA skips with a reason when absent.
TORCH_DEVICES = ["cpu", "cuda"]


@pytest.fixture(params=TORCH_DEVICES)
def torch_device(request: pytest.FixtureRequest) -> Any:
    """A torch device ("cpu", "cuda") for tests of torch-only code; skips without torch or
    without a CUDA device."""
    torch = pytest.importorskip("torch")
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device on this machine")
    return torch.device(request.param)


@pytest.fixture(params=["float32", "float64"])
def torch_dtype(request: pytest.FixtureRequest, torch_device: Any) -> Any:
    """torch.float32 / torch.float64 (with ``torch_device``)."""
    import torch

    return getattr(torch, request.param)
