"""refimpl.distributed.map_dataset: results equal a plain loop, resumable runs that never
take a damaged or foreign file as finished, failures reported by index with the other
results kept, and the same bytes on every executor (here, threads, a real 2-process dask
cluster). Worker processes cannot share a counter with the test, so ``fn`` counts its calls
by writing a file per call."""

from __future__ import annotations

import functools
import os
import pathlib
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refimpl.distributed as rd
from refimpl.distributed.files import encode, result_name, why_not_finished, write_atomic
from tests.cluster import cluster_fixture

ROOT = pathlib.Path(__file__).resolve().parent.parent
cluster = cluster_fixture()


# -- functions run on the workers (module level: the workers import them) ---------------------
def noisy(item, rng):
    """A dict result drawn from the item's key."""
    g = np.random.default_rng(rng)
    return {"value": item + g.normal(size=(2, 3)), "draws": g.integers(0, 10, size=4)}


def counted(calls: str, item, rng):
    """``noisy``, recording the call as a file ``calls/<item>-<random>``."""
    pathlib.Path(calls, f"{item}-{uuid.uuid4().hex}").touch()
    return noisy(item, rng)


def fails_on_three(flag: str, item, rng):
    """Raises on item 3 while the file ``flag`` exists."""
    if item == 3 and os.path.exists(flag):
        raise ValueError("item three is broken")
    return noisy(item, rng)


def calls_per_item(calls: pathlib.Path) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in calls.iterdir():
        i = int(p.name.split("-")[0])
        out[i] = out.get(i, 0) + 1
    return out


def file_bytes(summary) -> list[bytes]:
    return [pathlib.Path(p).read_bytes() for p in summary.paths]


@pytest.fixture
def calls(tmp_path):
    path = tmp_path / "calls"
    path.mkdir()
    return path


# -- results ----------------------------------------------------------------------------------
def test_results_equal_a_plain_loop_with_the_documented_keys(tmp_path):
    items = [0.5, -1.0, 2.0, 7.0]
    summary = rd.map_dataset(noisy, items, tmp_path / "out", seed=11)
    assert summary.computed == (0, 1, 2, 3) and summary.skipped == ()
    assert [os.path.basename(p) for p in summary.paths] == [f"00000{i}.npz" for i in range(4)]
    for i, item in enumerate(items):
        expected = noisy(item, np.random.SeedSequence([11, i]))
        got = summary.load(i)
        assert list(got) == ["value", "draws"]
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
            assert got[key].dtype == expected[key].dtype
        meta = rd.read_metadata(summary.paths[i])
        assert (meta["index"], meta["seed"], meta["kind"]) == (i, 11, "dict")
        assert meta["function"]["name"] == "tests.test_distributed_dataset.noisy"
        assert meta["function"]["code"].startswith("sha256:")
        assert meta["item"] == rd.digest(item)
        # numpy.load reads it too, without pickle
        with np.load(summary.paths[i], allow_pickle=False) as npz:
            np.testing.assert_array_equal(npz["value"], expected["value"])


@pytest.mark.parametrize(
    "result, kind",
    [
        (np.arange(6.0).reshape(2, 3), "array"),
        (3.5, "array"),
        ((np.ones(2), np.zeros((1, 2), dtype=np.int32)), "tuple"),
        ([np.ones(2)], "tuple"),
        ({"a.b": np.ones(1), "c-d_2": np.float32(2)}, "dict"),
    ],
)
def test_results_come_back_in_the_form_fn_returned(tmp_path, result, kind):
    summary = rd.map_dataset(lambda item, rng: result, [0], tmp_path)
    got = summary.load(0)
    assert rd.read_metadata(summary.paths[0])["kind"] == kind
    if kind == "array":
        np.testing.assert_array_equal(got, np.asarray(result))
    elif kind == "tuple":
        assert isinstance(got, tuple) and len(got) == len(result)
        for g, r in zip(got, result):
            np.testing.assert_array_equal(g, r)
            assert g.dtype == r.dtype
    else:
        assert list(got) == list(result)
        for key in result:
            np.testing.assert_array_equal(got[key], np.asarray(result[key]))


def test_arrays_of_every_backend_are_stored_as_numpy(backend, tmp_path):
    values = [[1.0, 2.0], [3.0, -4.0]]

    def fn(item, rng):
        return {"x": backend.asarray(values, dtype=backend.dtype("float32"))}

    summary = rd.map_dataset(fn, [0], tmp_path)
    got = summary.load(0)["x"]
    assert type(got) is np.ndarray and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.asarray(values, dtype=np.float32))


def test_torch_tensors_needing_grad_are_detached_and_copied(torch_device, tmp_path):
    torch = pytest.importorskip("torch")

    def fn(item, rng):
        x = torch.arange(4.0, device=torch_device, requires_grad=True)
        return (x * 2, x.sum())

    got = rd.map_dataset(fn, [0], tmp_path).load(0)
    np.testing.assert_array_equal(got[0], [0.0, 2.0, 4.0, 6.0])
    assert got[1].shape == () and float(got[1]) == 6.0


def test_files_are_bit_identical_here_on_threads_and_on_a_cluster(tmp_path, cluster):
    items = list(range(9))
    here = rd.map_dataset(noisy, items, tmp_path / "here", seed=3)
    with ThreadPoolExecutor(3) as pool:
        threads = rd.map_dataset(noisy, items, tmp_path / "threads", executor=pool, seed=3)
    on_cluster = rd.map_dataset(
        noisy, items, tmp_path / "cluster", executor=cluster, seed=3, window=2
    )
    assert file_bytes(here) == file_bytes(threads) == file_bytes(on_cluster)
    assert on_cluster.computed == tuple(items)


# -- resuming ---------------------------------------------------------------------------------
def test_a_rerun_recomputes_nothing(tmp_path, cluster, calls):
    fn = functools.partial(counted, str(calls))
    first = rd.map_dataset(fn, list(range(6)), tmp_path / "out", executor=cluster)
    assert calls_per_item(calls) == dict.fromkeys(range(6), 1)
    before = file_bytes(first)
    again = rd.map_dataset(fn, list(range(6)), tmp_path / "out", executor=cluster)
    assert calls_per_item(calls) == dict.fromkeys(range(6), 1)
    assert again.computed == () and again.skipped == tuple(range(6)) and again.recomputed == {}
    assert file_bytes(again) == before


def test_only_missing_items_are_computed(tmp_path, calls):
    fn = functools.partial(counted, str(calls))
    first = rd.map_dataset(fn, list(range(5)), tmp_path)
    os.remove(first.paths[1])
    os.remove(first.paths[4])
    again = rd.map_dataset(fn, list(range(5)), tmp_path)
    assert again.computed == (1, 4) and again.skipped == (0, 2, 3)
    assert calls_per_item(calls) == {0: 1, 1: 2, 2: 1, 3: 1, 4: 2}


def _damage(summary, fn, tmp_path) -> dict[int, str]:
    """Damage five files of a 7-item run of ``fn`` in five ways: their indices and reasons."""
    p = [pathlib.Path(x) for x in summary.paths]
    p[0].write_bytes(p[0].read_bytes()[:-40])  # truncated: the zip directory is cut
    data = bytearray(p[1].read_bytes())  # one flipped byte in an array's data
    data[len(data) // 2] ^= 0xFF
    p[1].write_bytes(bytes(data))
    # written by another run: another seed, another function, another item
    other = tmp_path / "other"
    seed9 = rd.map_dataset(fn, [0, 1, 2], other / "seed", seed=9)
    p[2].write_bytes(pathlib.Path(seed9.paths[2]).read_bytes())
    foreign = rd.map_dataset(lambda item, rng: noisy(item, rng), [0, 1, 2, 3], other / "fn")
    p[3].write_bytes(pathlib.Path(foreign.paths[3]).read_bytes())
    shifted = rd.map_dataset(fn, [0, 1, 2, 3, 4, 50], other / "item")
    p[5].write_bytes(pathlib.Path(shifted.paths[5]).read_bytes())
    return {0: "cannot be read", 1: "damaged", 2: "seed", 3: "another function", 5: "item"}


def test_damaged_or_foreign_files_are_recomputed_with_a_warning(tmp_path, calls):
    fn = functools.partial(counted, str(calls))
    items = list(range(7))
    reference = file_bytes(rd.map_dataset(fn, items, tmp_path / "ref"))
    first = rd.map_dataset(fn, items, tmp_path / "out")
    damaged = _damage(first, fn, tmp_path)
    for p in calls.iterdir():
        p.unlink()
    with pytest.warns(UserWarning, match="5 result file") as record:
        again = rd.map_dataset(fn, items, tmp_path / "out")
    assert "000000.npz: it cannot be read" in str(record[0].message)
    assert again.computed == (0, 1, 2, 3, 5) and again.skipped == (4, 6)
    assert sorted(again.recomputed) == sorted(damaged)
    for i, why in damaged.items():
        assert why in again.recomputed[i], (i, again.recomputed[i])
    assert calls_per_item(calls) == dict.fromkeys(damaged, 1)
    assert file_bytes(again) == reference


def test_a_truncated_file_is_recomputed_on_the_cluster(tmp_path, cluster, calls):
    fn = functools.partial(counted, str(calls))
    first = rd.map_dataset(fn, list(range(4)), tmp_path, executor=cluster)
    reference = file_bytes(first)
    path = pathlib.Path(first.paths[2])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(UserWarning, match="000002.npz: it cannot be read"):
        again = rd.map_dataset(fn, list(range(4)), tmp_path, executor=cluster)
    assert again.computed == (2,) and list(again.recomputed) == [2]
    assert calls_per_item(calls) == {0: 1, 1: 1, 2: 2, 3: 1}
    assert file_bytes(again) == reference


def test_a_name_replaces_the_fingerprint(tmp_path, calls):
    fn = functools.partial(counted, str(calls))
    rd.map_dataset(fn, [0, 1], tmp_path, name="noisy-v1")
    # another function under the same name is taken as the same computation
    again = rd.map_dataset(noisy, [0, 1], tmp_path, name="noisy-v1")
    assert again.skipped == (0, 1)
    assert rd.read_metadata(again.paths[0])["function"] == {"name": "noisy-v1"}
    with pytest.warns(UserWarning, match="another function"):
        renamed = rd.map_dataset(noisy, [0, 1], tmp_path, name="noisy-v2")
    assert renamed.computed == (0, 1)


def test_leftover_temporary_files_are_removed(tmp_path):
    tmp_path.joinpath(".000003.npz.abc123.tmp").write_bytes(b"half a file")
    keep = tmp_path.joinpath("notes.txt")
    keep.write_text("mine")
    summary = rd.map_dataset(noisy, [0, 1], tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["000000.npz", "000001.npz", "notes.txt"], names
    assert summary.computed == (0, 1)


# -- failures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["here", "cluster"])
def test_an_item_that_raises_is_reported_by_index_and_the_others_are_kept(tmp_path, request, where):
    executor = request.getfixturevalue("cluster") if where == "cluster" else None
    flag = tmp_path / "broken"
    flag.touch()
    fn = functools.partial(fails_on_three, str(flag))
    out = tmp_path / "out"
    with pytest.raises(rd.MapDatasetError, match=r"fn raised on 1 of 6 items") as info:
        rd.map_dataset(fn, list(range(6)), out, executor=executor)
    err = info.value
    assert list(err.errors) == [3] and isinstance(err.errors[3], ValueError)
    assert "item 3: ValueError: item three is broken" in str(err)
    assert isinstance(err.__cause__, ValueError)
    assert err.summary.computed == (0, 1, 2, 4, 5)
    assert err.summary.failed == {3: "ValueError: item three is broken"}
    assert sorted(p.name for p in out.iterdir()) == [result_name(i) for i in (0, 1, 2, 4, 5)]
    flag.unlink()  # fixed: the rerun computes item 3 only
    again = rd.map_dataset(fn, list(range(6)), out, executor=executor)
    assert again.computed == (3,) and again.skipped == (0, 1, 2, 4, 5)
    np.testing.assert_array_equal(again.load(3)["value"], noisy(3, rd.item_rng(0, 3))["value"])


@pytest.mark.parametrize(
    "result, error, match",
    [
        (None, TypeError, "fn returned None"),
        ({"x": np.array([object()])}, TypeError, "dtype object"),
        ({"../x": np.ones(1)}, ValueError, "keys of a dict result"),
        ({1: np.ones(1)}, ValueError, "keys of a dict result"),
        ("text", TypeError, "must be an array"),
    ],
)
def test_results_that_cannot_be_stored_fail_their_item(tmp_path, result, error, match):
    with pytest.raises(rd.MapDatasetError, match="item 0") as info:
        rd.map_dataset(lambda item, rng: result, [0], tmp_path)
    assert isinstance(info.value.errors[0], error)
    assert match in str(info.value.errors[0])
    assert list(tmp_path.iterdir()) == []


# -- arguments --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(fn=3), TypeError, "fn must be callable"),
        (dict(items="abc"), TypeError, "items must be a sequence"),
        (dict(items=5), TypeError, "items must be a sequence"),
        (dict(items={"a", "b"}), TypeError, "items must be a sequence, got a set"),
        (dict(items={0: "a"}), TypeError, "items must be a sequence, got a dict"),
        (dict(out_dir=3), TypeError, "out_dir must be a path"),
        (dict(out_dir=""), ValueError, "out_dir must be a non-empty"),
        (dict(seed=-1), ValueError, "seed must be an int >= 0"),
        (dict(seed=True), TypeError, "seed must be an int"),
        (dict(seed=1.0), TypeError, "seed must be an int"),
        (dict(progress="yes"), TypeError, "progress must be True, False or None"),
        (dict(name=""), TypeError, "name must be None or a non-empty str"),
        (dict(window=0), ValueError, "window must be an int >= 1"),
        (dict(executor=object()), TypeError, "executor must be None"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(tmp_path, kwargs, error, match):
    args = {"fn": noisy, "items": [0, 1], "out_dir": tmp_path / "out", **kwargs}
    with pytest.raises(error, match=match):
        rd.map_dataset(args.pop("fn"), args.pop("items"), args.pop("out_dir"), **args)
    assert not (tmp_path / "out").exists()


def test_out_dir_that_is_a_file_and_a_client_are_refused(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        rd.map_dataset(noisy, [0], file)

    class Client:  # what a dask Client looks like to map_dataset
        def submit(self, *a):
            raise AssertionError

        def get_executor(self):
            raise AssertionError

    with pytest.raises(TypeError, match=r"client.get_executor\(\)"):
        rd.map_dataset(noisy, [0], tmp_path / "out", executor=Client())


def test_items_may_be_any_iterable_or_an_array(tmp_path):
    listed = rd.map_dataset(noisy, [1.0, 2.0], tmp_path / "list")
    generated = rd.map_dataset(noisy, (x for x in [1.0, 2.0]), tmp_path / "generator")
    array = rd.map_dataset(noisy, np.array([1.0, 2.0]), tmp_path / "array")
    assert file_bytes(generated) == file_bytes(listed)
    for i in range(2):
        np.testing.assert_array_equal(array.load(i)["value"], listed.load(i)["value"])


def test_progress_bar(tmp_path, capsys):
    rd.map_dataset(noisy, [0, 1, 2], tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "map_dataset" in err and "/3 [" in err
    rd.map_dataset(noisy, [0, 1, 2], tmp_path, progress=False)
    assert capsys.readouterr().err == ""


# -- fingerprints -----------------------------------------------------------------------------
def _twice(x):
    return 2 * x


def _thrice(x):
    return 3 * x


def _uses_a_set(x):
    return x in {"a", "b", "c", "d", "e"}


def test_fingerprints_tell_code_closures_and_bound_arguments_apart():
    fp = rd.function_fingerprint
    assert fp(_twice) != fp(_thrice)
    assert fp(_twice)["name"] == "tests.test_distributed_dataset._twice"

    def scaled(k):
        return lambda x: k * x

    assert fp(scaled(2)) == fp(scaled(2)) and fp(scaled(2)) != fp(scaled(3))
    assert fp(functools.partial(counted, "a")) != fp(functools.partial(counted, "b"))
    assert fp(functools.partial(counted, "a"))["name"] == "tests.test_distributed_dataset.counted"
    assert fp(_twice, name="v1") == {"name": "v1"}


def test_a_module_state_is_part_of_the_fingerprint():
    torch = pytest.importorskip("torch")
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        b.weight.copy_(a.weight)
        b.bias.copy_(a.bias)
    fp = rd.function_fingerprint
    assert fp(a) == fp(b)
    assert fp(functools.partial(counted, a)) == fp(functools.partial(counted, b))
    with torch.no_grad():
        b.bias.add_(1.0)
    assert fp(a) != fp(b)
    assert rd.digest(torch.ones(3)) == rd.digest(np.ones(3, dtype=np.float32))


def test_fingerprints_and_digests_are_the_same_in_another_process():
    """A rerun is another interpreter, with another string-hash seed (set orders change)."""
    code = (
        "import functools, numpy as np, refimpl.distributed as rd; "
        "from tests import test_distributed_dataset as t; "
        "print(rd.function_fingerprint(t._uses_a_set)['code']); "
        "print(rd.function_fingerprint(functools.partial(t.counted, 'x'))['code']); "
        "print(rd.digest([{'b': 1, 'a': (2.5, 'x')}, frozenset('abcdef'), np.arange(3)]))"
    )
    outputs = set()
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout)
    here = "\n".join(
        [
            rd.function_fingerprint(_uses_a_set)["code"],
            rd.function_fingerprint(functools.partial(counted, "x"))["code"],
            rd.digest([{"b": 1, "a": (2.5, "x")}, frozenset("abcdef"), np.arange(3)]),
        ]
    )
    assert outputs == {here + "\n"}


def test_the_file_bytes_depend_on_the_result_only():
    meta = {"index": 0, "seed": 0, "item": "i", "function": {"name": "f"}}
    x = {"a": np.arange(3.0)}
    assert encode(meta, x) == encode(dict(reversed(meta.items())), {"a": np.arange(3.0)})
    assert encode(meta, x) != encode({**meta, "seed": 1}, x)
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    assert encode(meta, fortran) == encode(meta, np.arange(6.0).reshape(2, 3))


ARRAYS = hnp.arrays(
    dtype=st.sampled_from(["<f4", "<f8", "<i4", "<i8", "|b1", "<c16", "|u1", ">f8"]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
RESULTS = st.one_of(
    ARRAYS,
    st.tuples(ARRAYS, ARRAYS),
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True), ARRAYS, max_size=3),
)


@given(RESULTS)
def test_any_result_comes_back_as_stored_and_encodes_to_the_same_bytes(result):
    meta = {"index": 0, "seed": 0, "item": "i", "function": {"name": "f"}}
    data = encode(meta, result)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, result_name(0))
        write_atomic(path, data)
        got = rd.load_result(path)
        assert why_not_finished(path, meta) is None
    if isinstance(result, np.ndarray):
        pairs = [(got, result)]
    elif isinstance(result, dict):
        assert list(got) == list(result)
        pairs = [(got[key], result[key]) for key in result]
    else:
        assert isinstance(got, tuple) and len(got) == len(result)
        pairs = list(zip(got, result))
    for g, r in pairs:
        assert g.dtype == r.dtype and g.shape == r.shape
        np.testing.assert_array_equal(g, r)
    assert encode(meta, got) == data  # what is read back writes the same file


# -- local_cluster without dask ---------------------------------------------------------------
def test_local_cluster_checks_n_workers_and_names_the_extra(monkeypatch):
    with pytest.raises(ValueError, match="n_workers must be an int >= 1"):
        rd.local_cluster(0)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"refimpl\[distributed\]"):
        rd.local_cluster(1)


def test_importing_the_package_loads_neither_dask_nor_torch():
    code = (
        "import sys, refimpl.distributed; "
        "bad = [m for m in ('dask', 'distributed', 'torch') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the example ------------------------------------------------------------------------------
def test_the_example_runs_and_its_files_do_not_depend_on_the_executor(tmp_path, cluster):
    torch = pytest.importorskip("torch")
    import importlib

    example = importlib.import_module("examples.distributed_dataset")  # the workers import it
    images = tmp_path / "images"  # the items are paths: the same ones for both runs
    sizes = dict(n_images=3, size=12, images_dir=images)
    on_cluster = example.run(tmp_path / "cluster", executor=cluster, **sizes)
    # the workers compute with one thread (dask sets OMP_NUM_THREADS=1); torch's matrix
    # products split their sums over threads, so the same bits need one thread here too
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = example.run(tmp_path / "here", executor=None, **sizes)
    finally:
        torch.set_num_threads(threads)
    assert len(on_cluster.paths) == 3
    assert file_bytes(on_cluster) == file_bytes(here)
    result = on_cluster.load(0)
    assert result["smoothgrad"].shape == (1, 12, 12)
    eigenvalues = result["eigenvalues"]
    assert eigenvalues.shape == (2,) and eigenvalues[0] >= eigenvalues[1] > 0
    assert result["eigendistortions"].shape == (2, 1, 12, 12)
