"""The backend registry, the switch, and the namespace/device helpers."""

from __future__ import annotations

import numpy as np
import pytest

import backends
from backends import registry
from backends.base import Backend, BackendUnavailableError
from backends.registry import ADAPTERS


def test_available_lists_importable_backends():
    names = backends.available()
    assert "numpy" in names and "array_api_strict" in names
    for n in names:
        assert ADAPTERS[n].is_available()
    assert set(names) <= set(backends.names())


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown backend 'dask'.*jax.*numpy.*torch"):
        backends.get("dask")
    with pytest.raises(TypeError, match="backend name must be a string"):
        backends.get(3)


def test_missing_library_says_what_to_install(monkeypatch):
    class Missing(Backend):
        name = "nosuchlib"
        module = "nosuchlib_for_refimpl_tests"
        package = "nosuchlib-pkg"

    monkeypatch.setitem(ADAPTERS, "nosuchlib", Missing())
    assert "nosuchlib" not in backends.available()
    with pytest.raises(BackendUnavailableError, match=r"pip install 'nosuchlib-pkg'") as info:
        backends.get("nosuchlib")
    assert isinstance(info.value, ImportError)


def test_install_hint_names_existing_extras(monkeypatch):
    import importlib
    import importlib.metadata

    extras = set(importlib.metadata.metadata("refimpl").get_all("Provides-Extra") or ())
    assert {"torch", "cupy", "test"} <= extras
    real_import = importlib.import_module

    def fail(name, *a, **k):
        if name in ("torch", "cupy", "array_api_strict", "numpy", "jax"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fail)
    for name, adapter in backends.registry.ADAPTERS.items():
        reason = adapter.unavailable_reason()
        assert reason is not None and adapter.package in reason
        named = [w.split("[", 1)[1].rstrip("])'\",.") for w in reason.split() if "refimpl[" in w]
        assert all(e in extras for e in named), (name, reason)


def test_cupy_without_gpu_is_unavailable_with_a_reason():
    reason = ADAPTERS["cupy"].unavailable_reason()
    if reason is None:
        pytest.skip("a usable cupy is present")
    assert "cupy" in reason
    with pytest.raises(BackendUnavailableError):
        backends.get("cupy")


def test_adapter_interface(backend):
    a = backend.adapter
    assert a.name in backends.names()
    assert a.xp is backend.xp
    assert a.default_device in a.devices()
    x = a.asarray([[1.0, 2.0], [3.0, 4.0]], dtype="float32", device=backend.device)
    backend.assert_same_place(x, a.dtype("float32"))
    np.testing.assert_array_equal(a.to_numpy(x), np.array([[1, 2], [3, 4]], dtype=np.float32))
    y = a.asarray(np.arange(3.0), device=backend.device)
    assert a.dtype_name(y.dtype) == "float64"
    r = a.rng(0, device=backend.device)
    backend.assert_same_place(r.uniform((2,), dtype=a.dtype("float64")))


def test_to_numpy_is_a_copy(backend):
    x = backend.asarray([1.0, 2.0], dtype="float64")
    a = backend.to_numpy(x)
    a[0] = 99.0
    assert backend.to_numpy(x)[0] == 1.0


def test_switch_precedence(monkeypatch):
    monkeypatch.setattr(registry, "_default", None)
    monkeypatch.setattr(registry, "_default_device", None)
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert backends.current()[0].name == "numpy"

    monkeypatch.setenv(backends.ENV_VAR, "array_api_strict")
    assert backends.current()[0].name == "array_api_strict"

    backends.set_default("numpy")
    try:
        assert backends.current()[0].name == "numpy"  # set_default beats the env var
        with backends.use("array_api_strict", device="device1") as adapter:
            assert adapter.name == "array_api_strict"
            got, dev = backends.current()
            assert got.name == "array_api_strict" and str(dev) == str(adapter.device("device1"))
            # explicit beats everything
            assert backends.resolve("numpy")[0].name == "numpy"
            with backends.use("numpy"):
                assert backends.current()[0].name == "numpy"
            assert backends.current()[0].name == "array_api_strict"
        assert backends.current()[0].name == "numpy"
    finally:
        backends.set_default(None)

    monkeypatch.setenv(backends.ENV_VAR, "nonsense")
    with pytest.raises(ValueError, match="REFIMPL_BACKEND='nonsense' names no backend"):
        backends.current()


def test_use_restores_on_error():
    before = backends.current()[0].name
    with pytest.raises(RuntimeError):
        with backends.use("array_api_strict"):
            raise RuntimeError("boom")
    assert backends.current()[0].name == before


def test_use_rejects_unknown_names_and_devices():
    with pytest.raises(ValueError, match="unknown backend"):
        with backends.use("tensorflow"):
            pass
    with pytest.raises(ValueError, match="only the device 'cpu'"):
        with backends.use("numpy", device="cuda"):
            pass


def test_namespace_and_device(backend):
    x = backend.asarray([1.0, 2.0], dtype="float64")
    xp, dev = backends.namespace_and_device(x, None, 2.0, x)
    assert xp is backend.xp and dev == backend.device
    assert backends.backend_of(x) is backend.adapter
    assert backends.backend_of(xp) is backend.adapter


def test_namespace_and_device_needs_an_array():
    with pytest.raises(TypeError, match="at least one array"):
        backends.namespace_and_device(None, 1.0)


def test_mixed_namespaces_raise():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"one array library; got numpy.ndarray, torch.Tensor"):
        backends.namespace_and_device(np.ones(2), torch.ones(2))


def test_mixed_devices_raise():
    a = backends.get("array_api_strict")
    x = a.asarray([1.0], device="device1")
    y = a.asarray([1.0], device="CPU_DEVICE")
    with pytest.raises(ValueError, match="different devices"):
        backends.namespace_and_device(x, y)


def test_floating_dtype_rejects_integers(backend):
    from backends import floating_dtype

    x = backend.asarray([1, 2], dtype="int64")
    with pytest.raises(TypeError, match="grad must have a real floating dtype"):
        floating_dtype(backend.xp, x, name="grad")
    f = backend.asarray([1.0], dtype="float32")
    assert floating_dtype(backend.xp, f) == backend.dtype("float32")


def test_cuda_device_without_gpu_is_an_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        backends.get("torch").device("cuda")


def test_asarray_keeps_zero_d_and_numpy_scalars(backend):
    x = backend.asarray(np.zeros(()), dtype="float64")
    assert tuple(x.shape) == ()
    xp, _ = backends.namespace_and_device(np.float64(1.0))
    assert backends.backend_of(xp).name == "numpy"
