"""``Eigendistortion.load`` on damaged and crafted files, on every backend.

A corpus made from one good saved file: truncations and flipped bytes at many offsets, arrays
of the wrong shape, dtype, layout or values, extra, missing and duplicate members, and
hypothesis-made metadata (JSON values of every type in every field). The only acceptable
outcomes: a load that gives the saved results, or a ValueError naming the path after which
the object is exactly as before (no results, no Jacobian) and still loads the good file.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl import models as rm
from refimpl.eigendistortion import Eigendistortion
from tests.test_models import arr

N = 4  # (1, 1, 4, 4) images: n = 16 pixels, 6 outputs, eigsh k=2 -> 4 distortions
RESULTS = ("eigenvalues", "eigendistortions", "eigenindex", "jacobian")


class Corpus:
    """A good file and the object to load damaged ones into (a linear model on ``backend``)."""

    def __init__(self, backend, tmp_path) -> None:
        r = np.random.default_rng(0)
        dtype = backend.dtype("float64")
        self.backend = backend
        self.model = rm.Sequential(
            rm.Flatten(3), rm.Linear(arr(backend, r.normal(size=(6, 16)), dtype))
        )
        self.image = arr(backend, r.uniform(0.1, 0.9, (1, 1, N, N)), dtype)
        self.saved = Eigendistortion(self.image, self.model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.saved.synthesize("eigsh", k=2, rng=0, progress=False)
        self.saved.compute_jacobian()
        good = tmp_path / "good.npz"
        self.saved.save(good)
        self.good, self.bad = good.read_bytes(), tmp_path / "bad.npz"
        with zipfile.ZipFile(good) as zf:
            self.members = {name: zf.read(name) for name in zf.namelist()}
        self.meta = json.loads(self.members["metadata.json"])
        self.target = self.fresh()

    def fresh(self) -> Eigendistortion:
        return Eigendistortion(self.image, self.model)

    def host(self, eig: Eigendistortion, name: str) -> np.ndarray:
        return self.backend.to_numpy(getattr(eig, name))

    def attempt(self, data: bytes) -> str:
        """Load ``data`` into the target: "loaded" (and equal to the saved results) or
        "refused" (ValueError naming the path, target untouched)."""
        self.bad.write_bytes(data)
        try:
            self.target.load(self.bad)
        except ValueError as exc:
            assert str(self.bad) in str(exc), f"the message does not name the path: {exc}"
            t = self.target
            assert t.result is None and t.jacobian is None and t.method is None, "half-loaded"
            return "refused"
        for name in RESULTS:
            np.testing.assert_array_equal(self.host(self.target, name), self.host(self.saved, name))
        self.target = self.fresh()
        return "loaded"

    def still_loads(self) -> None:
        """The target, after every refusal, loads the good file."""
        self.target.load(self.bad.parent / "good.npz")
        assert self.target.method == "eigsh"

    def with_members(self, **changes: bytes | None) -> bytes:
        """The good archive with members replaced (``None``: removed), stored uncompressed."""
        members = dict(self.members)
        for key, value in changes.items():
            name = key.replace("__", ".")
            if value is None:
                members.pop(name)
            else:
                members[name] = value
        return zipped(members)

    def with_meta(self, **changes) -> bytes:
        return self.with_members(metadata__json=json.dumps({**self.meta, **changes}).encode())


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


@pytest.fixture
def corpus(backend, tmp_path):
    return Corpus(backend, tmp_path)


# -- bytes -----------------------------------------------------------------------------------
def test_truncations_at_many_offsets_are_refused(corpus):
    size = len(corpus.good)  # every 7th offset, and each of the central directory's
    for offset in sorted({*range(0, size, 7), *range(max(0, size - 120), size)}):
        assert corpus.attempt(corpus.good[:offset]) == "refused", offset
    corpus.still_loads()


def test_flipped_bytes_load_the_saved_results_or_are_refused(corpus):
    outcomes = set()
    for offset in range(0, len(corpus.good), 9):
        for mask in (0x01, 0xFF):
            data = bytearray(corpus.good)
            data[offset] ^= mask
            outcomes.add(corpus.attempt(bytes(data)))
    assert outcomes == {"loaded", "refused"}  # flips in timestamps etc. are harmless
    corpus.still_loads()


# -- members ---------------------------------------------------------------------------------
def test_missing_extra_duplicate_and_compressed_members_are_refused(corpus):
    for name in corpus.members:
        assert (
            corpus.attempt(zipped({k: v for k, v in corpus.members.items() if k != name}))
            == "refused"
        ), name
    assert corpus.attempt(corpus.with_members(extra__npy=npy(np.zeros(3)))) == "refused"
    assert corpus.attempt(corpus.with_members(readme__txt=b"hello")) == "refused"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        buf = io.BytesIO(corpus.good)
        with zipfile.ZipFile(buf, "a") as zf:
            zf.writestr("image.npy", corpus.members["image.npy"])
    assert corpus.attempt(buf.getvalue()) == "refused"
    assert corpus.attempt(zipped(corpus.members, zipfile.ZIP_DEFLATED)) == "refused"
    assert corpus.attempt(b"") == "refused"
    assert corpus.attempt(b"not a zip at all") == "refused"
    corpus.still_loads()


def _good_arrays(corpus) -> dict[str, np.ndarray]:
    return {
        name[:-4]: np.load(io.BytesIO(data))
        for name, data in corpus.members.items()
        if name.endswith(".npy")
    }


def test_arrays_of_the_wrong_shape_dtype_layout_or_values_are_refused(corpus):
    good = _good_arrays(corpus)
    vals, dists, index = good["eigenvalues"], good["eigendistortions"], good["eigenindex"]
    bad = {
        "7 eigenvalues, 4 distortions": dict(eigenvalues__npy=npy(np.arange(7.0))),
        "7 values and indices": dict(
            eigenvalues__npy=npy(np.arange(7.0)), eigenindex__npy=npy(np.arange(7))
        ),
        "no eigenvalue": dict(eigenvalues__npy=npy(np.zeros(0))),
        "2-d eigenvalues": dict(eigenvalues__npy=npy(vals[:, None])),
        "distortions of another image": dict(eigendistortions__npy=npy(dists[..., :3])),
        "image of another shape": dict(image__npy=npy(good["image"][..., :3])),
        "jacobian transposed": dict(jacobian__npy=npy(good["jacobian"].T.copy())),
        "representation 1-d": dict(representation__npy=npy(good["representation"].ravel())),
        "float index": dict(eigenindex__npy=npy(index.astype(np.float64))),
        "int eigenvalues": dict(eigenvalues__npy=npy(vals.astype(np.int64))),
        "float32 image in a float64 file": dict(image__npy=npy(good["image"].astype(np.float32))),
        "complex eigendistortions": dict(eigendistortions__npy=npy(dists.astype(np.complex128))),
        "big-endian eigenvalues": dict(eigenvalues__npy=npy(vals.astype(">f8"))),
        "bool index": dict(eigenindex__npy=npy(index > 0)),
        "fortran order": dict(jacobian__npy=npy(np.asfortranarray(good["jacobian"]))),
        "NaN eigenvalue": dict(eigenvalues__npy=npy(np.r_[np.nan, vals[1:]])),
        "negative eigenvalue": dict(eigenvalues__npy=npy(-vals)),
        "infinite distortion": dict(
            eigendistortions__npy=npy(np.where(dists == dists.max(), np.inf, dists))
        ),
        "index beyond n": dict(eigenindex__npy=npy(index + 16)),
        "negative index": dict(eigenindex__npy=npy(index - 16)),
        "truncated body": dict(eigenvalues__npy=npy(vals)[:-3]),
        "body too long": dict(eigenvalues__npy=npy(vals) + b"\0" * 8),
        "not npy": dict(eigenvalues__npy=b"hello"),
        "header not a literal": dict(eigenvalues__npy=npy(vals).replace(b"'descr'", b"descr()")),
        "header a list": dict(eigenvalues__npy=b"\x93NUMPY\x01\x00\x06\x00[1,2]\n"),
        "npy version 9": dict(eigenvalues__npy=b"\x93NUMPY\x09" + npy(vals)[7:]),
        "header longer than the member": dict(eigenvalues__npy=b"\x93NUMPY\x01\x00\xff\xff{}"),
    }
    for label, changes in bad.items():
        assert corpus.attempt(corpus.with_members(**changes)) == "refused", label
    corpus.still_loads()


def test_metadata_inconsistent_with_the_arrays_is_refused(corpus):
    meta = corpus.meta
    bad = {
        "json list": dict(metadata__json=b"[1, 2]"),
        "not json": dict(metadata__json=b"{nope"),
        "not utf8": dict(metadata__json=b"\xff\xfe\x00"),
        "deeply nested": dict(metadata__json=b"[" * 100000 + b"]" * 100000),
    }
    for label, changes in bad.items():
        assert corpus.attempt(corpus.with_members(**changes)) == "refused", label
    crafted = {
        "version str": dict(version="2"),
        "version newer": dict(version=2),
        "version 0": dict(version=0),
        "version bool": dict(version=True),
        "unknown method": dict(method="bogus"),
        "no method with results": dict(method=None),
        "n disagrees": dict(n=15),
        "image shape disagrees": dict(image_shape=[1, 1, 4, 5], n=20),
        "a batch of 2": dict(image_shape=[2, 1, 4, 2]),
        "float16 image": dict(image_dtype="float16"),
        "representation shape disagrees": dict(representation_shape=[1, 7]),
        "arrays miss eigenindex": dict(arrays=[a for a in meta["arrays"] if a != "eigenindex"]),
        "arrays twice": dict(arrays=meta["arrays"] + ["image"]),
        "arrays unknown": dict(arrays=meta["arrays"] + ["secret"]),
        "convergence list": dict(convergence=[]),
        "residuals str": dict(convergence={"top": {"residuals": "small", "scale": 1.0}}),
        "scale str": dict(convergence={"top": {"residuals": [0.1], "scale": "1"}}),
        "format": dict(format="something.else"),
        "unknown field": dict(extra=1),
    }
    for label, changes in crafted.items():
        assert corpus.attempt(corpus.with_meta(**changes)) == "refused", label
    without = {k: v for k, v in meta.items() if k != "n"}
    assert (
        corpus.attempt(corpus.with_members(metadata__json=json.dumps(without).encode()))
        == "refused"
    )
    corpus.still_loads()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def test_hypothesis_metadata_values_load_consistently_or_are_refused(corpus):
    fields = sorted(corpus.meta)

    @given(field=st.sampled_from(fields), value=JSON)
    def check(field, value):
        outcome = corpus.attempt(corpus.with_meta(**{field: value}))
        if outcome == "loaded":  # only free text (backend, model) or another valid method
            assert field in ("backend", "model", "method", "convergence"), (field, value)

    check()
    corpus.still_loads()


def test_a_file_without_results_round_trips(backend, tmp_path):
    corpus = Corpus(backend, tmp_path)
    fresh = corpus.fresh()
    fresh.save(tmp_path / "empty.npz")
    other = corpus.fresh()
    other.load(tmp_path / "empty.npz")
    assert other.result is None and other.jacobian is None
    other.load(tmp_path / "good.npz")  # no results: still just-initialized
    assert other.method == "eigsh"
