"""Saving and loading eigendistortions: an ``.npz`` file with a JSON metadata entry.

The file is a zip archive that ``numpy.load(path)`` reads without pickle: one ``NAME.npy``
per array (the image, the model's output, the results, the Jacobian when computed) and
``metadata.json`` (format and version, method, shapes, dtypes, convergence facts). Nothing
executable is stored, so loading a file cannot run code, and the model itself is never
saved: the file records the model's *output* at the image, and :func:`load` refuses a file
whose image or model output differs from the object it loads into.

The ``.npy`` entries are written and read with the standard library (``zipfile`` and the
documented ``.npy`` header), since ``refimpl`` does not import numpy; arrays reach the host
through the backend adapter's ``to_numpy``. :func:`save` writes to a temporary file in the
target directory and renames it over ``path`` (``os.replace``, atomic on POSIX and Windows),
so a crash never leaves a half-written file.

:func:`read` trusts nothing in a file: the archive, the metadata schema (every field's type,
the method, shapes consistent with each other), the members (exactly those the metadata
lists, stored uncompressed), each ``.npy`` header (layout, dtype, shape) and body length,
and the values (finite results, eigenvalues >= 0, eigenindex within the spectrum). A file
that fails any check raises ValueError naming the path and what is wrong, and :func:`load`
assigns nothing until every check has passed.
"""

from __future__ import annotations

import ast
import json
import math
import os
import sys
import tempfile
import warnings
import zipfile
from typing import Any

import backends
from refimpl.eigendistortion.options import METHODS, EigendistortionResult
from refimpl.validation import check_bool, check_real

FORMAT = "refimpl.Eigendistortion"
VERSION = 1
_RESULTS = ("eigenvalues", "eigendistortions", "eigenindex")
_ARRAYS = (*_RESULTS, "jacobian")
#: struct format characters of the little-endian dtypes we store
_STRUCT = {"<f2": "e", "<f4": "f", "<f8": "d", "<i8": "q", "<i4": "i"}
#: the ``.npy`` descr of each image dtype (eigensolvers need single precision at least)
_IMAGE_DESCR = {"float32": "<f4", "float64": "<f8"}
_FLOATS = frozenset({"<f2", "<f4", "<f8"})
_INTS = frozenset({"<i4", "<i8"})
#: every metadata field and the JSON type it must have
_META = {
    "format": str,
    "version": int,
    "method": (str, type(None)),
    "n": int,
    "image_shape": list,
    "image_dtype": str,
    "representation_shape": list,
    "backend": str,
    "model": str,
    "convergence": dict,
    "arrays": list,
}
#: types of the convergence facts that readers of ``convergence`` rely on (plots, reports)
_FACTS = {"residuals": list, "max_residual": float, "scale": float, "converged": bool}
_FACTS_INT = ("n_products", "iterations")
#: the longest ``.npy`` header we accept (numpy writes at most 64 KiB in format 1.0)
_MAX_HEADER = 65536
#: the most dimensions an image may have (numpy's limit is 64)
_MAX_NDIM = 32


class _Invalid(Exception):
    """What is wrong with a file (turned into a ValueError naming the path by :func:`read`)."""


# -- paths ---------------------------------------------------------------------------------
def _file_path(path: Any, *, to: str) -> str:
    """``path`` as a str naming a file (not empty, not a directory); TypeError for a value
    that is not a path."""
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(
            f"{to}: path must be a str or an os.PathLike, got {path!r} ({type(path).__name__})"
        ) from None
    if not text or not os.path.basename(text) or os.path.isdir(text):
        raise ValueError(f"{to}: path must name a file, got {text!r} (a directory or empty)")
    return text


# -- .npy entries -------------------------------------------------------------------------
def _npy_bytes(a: Any) -> bytes:
    """The ``.npy`` (format 1.0) encoding of a host numpy array ``a``."""
    header = {"descr": a.dtype.str, "fortran_order": False, "shape": tuple(a.shape)}
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64  # the header ends on a 64-byte boundary
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + a.tobytes(order="C")


def _npy_header(fh: Any, name: str) -> tuple[str, tuple[int, ...]]:
    """``(descr, shape)`` from the header of the ``.npy`` stream ``fh`` (left at the body)."""
    magic = fh.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise _Invalid(f"member {name!r} is not an .npy array (bad magic or version)")
    size = 2 if magic[6] == 1 else 4
    hlen = int.from_bytes(fh.read(size), "little")
    text = fh.read(hlen) if hlen <= _MAX_HEADER else b""
    if len(text) != hlen:
        raise _Invalid(f"member {name!r}: its .npy header is truncated or too long")
    try:
        header = ast.literal_eval(text.decode("utf8" if magic[6] == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise _Invalid(f"member {name!r}: its .npy header is not a Python literal") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _Invalid(f"member {name!r}: .npy header {header!r} lacks descr/fortran_order/shape")
    descr, shape = header["descr"], header["shape"]
    if header["fortran_order"] is not False or descr not in _STRUCT or sys.byteorder != "little":
        raise _Invalid(f"member {name!r} has an unsupported layout ({header})")
    if not isinstance(shape, tuple) or not all(_is_int(s) and s >= 0 for s in shape):
        raise _Invalid(f"member {name!r}: .npy shape {shape!r} is not a tuple of ints >= 0")
    return descr, shape


def _npy_body(fh: Any, name: str, descr: str, shape: tuple[int, ...]) -> Any:
    """The numpy array (through the numpy adapter) of the body that follows the header."""
    code = _STRUCT[descr]
    nbytes = math.prod(shape) * int(descr[2:])
    body = bytearray(fh.read(nbytes + 1))  # a writable copy: the arrays may be modified later
    if len(body) != nbytes:
        raise _Invalid(
            f"member {name!r}: its body has {len(body)}{'+' if len(body) > nbytes else ''} "
            f"bytes, its header ({descr}, shape {shape}) needs {nbytes}"
        )
    return backends.get("numpy").asarray(memoryview(body).cast(code)).reshape(shape)


def _host(x: Any) -> Any:
    return backends.backend_of(x).to_numpy(x)


# -- save ------------------------------------------------------------------------------------
def save(eig: Any, path: Any) -> None:
    """Write ``eig`` to ``path`` atomically (temporary file, then ``os.replace``): an npz
    archive, so ``path`` ends in ``.npz`` or has no suffix (ValueError for another one, such
    as plenoptic's ``.pt``, which only the torch front end writes)."""
    path = _file_path(path, to="save")
    suffix = os.path.splitext(path)[1]
    if suffix not in ("", ".npz"):
        raise ValueError(
            f"save: writes an npz archive, so path must end in .npz or have no suffix, got "
            f"{path!r} (plenoptic's .pt files: refimpl.torch.Eigendistortion.save)"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: the directory of path {path!r} does not exist")
    adapter = backends.backend_of(eig.image)
    arrays = {"image": eig.image, "representation": eig.representation}
    for name in _ARRAYS:
        value = getattr(eig, name)
        if value is not None:
            arrays[name] = value
    meta = dict(
        format=FORMAT,
        version=VERSION,
        method=eig.method,
        n=eig.n_pixels,
        image_shape=list(eig.image.shape),
        image_dtype=adapter.dtype_name(eig.image.dtype),
        representation_shape=list(eig.representation.shape),
        backend=adapter.name,
        model=repr(eig.model),
        convergence=eig.convergence,
        arrays=sorted(arrays),
    )
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("metadata.json", json.dumps(meta, indent=1))
                for name, value in arrays.items():
                    zf.writestr(f"{name}.npy", _npy_bytes(_host(value)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# -- the metadata schema ---------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_fields(meta: Any) -> None:
    """Every field present, nothing else, each of its JSON type."""
    if not isinstance(meta, dict):
        raise _Invalid(f"metadata.json holds a {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise _Invalid(f"it holds {meta.get('format')!r}, not a saved Eigendistortion ({FORMAT})")
    missing, extra = set(_META) - set(meta), set(meta) - set(_META)
    if missing or extra:
        raise _Invalid(f"metadata lacks {sorted(missing)} or has unknown fields {sorted(extra)}")
    for key, kind in _META.items():
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _Invalid(f"metadata {key!r} has the wrong type: {value!r}")
    if not 1 <= meta["version"] <= VERSION:
        raise _Invalid(f"format version {meta['version']} is not in [1, {VERSION}]")
    if meta["method"] is not None and meta["method"] not in METHODS:
        raise _Invalid(
            f"metadata 'method' must be in {list(METHODS)} or null, got {meta['method']!r}"
        )


def _shape(meta: dict, key: str) -> tuple[int, ...]:
    """A non-empty shape of positive ints (no more than ``_MAX_NDIM`` of them)."""
    shape = meta[key]
    if not 1 <= len(shape) <= _MAX_NDIM or not all(_is_int(s) and s >= 1 for s in shape):
        raise _Invalid(f"metadata {key!r} must be a list of 1 to {_MAX_NDIM} ints >= 1: {shape!r}")
    return tuple(shape)


def _check_convergence(convergence: dict, has_results: bool) -> None:
    """Per block (a dict of facts): residuals a list of numbers, the documented facts typed."""
    if not has_results and convergence:
        raise _Invalid("metadata 'convergence' must be empty when the file holds no results")
    for block, facts in convergence.items():
        if not isinstance(facts, dict):
            raise _Invalid(f"metadata convergence[{block!r}] is not an object: {facts!r}")
        bad = [k for k, kind in _FACTS.items() if k in facts and not _of_type(facts[k], kind)]
        bad += [k for k in _FACTS_INT if k in facts and not _is_int(facts[k])]
        residuals = facts.get("residuals", [])
        if bad or not all(_of_type(r, float) for r in residuals):
            raise _Invalid(f"metadata convergence[{block!r}] has facts of the wrong type: {bad}")


def _of_type(value: Any, kind: type) -> bool:
    """JSON typing: a float field also takes an int (other JSON writers may write 1.0 as 1)."""
    if kind is float:
        return _is_int(value) or isinstance(value, float)
    return isinstance(value, kind)


def _check_listed(meta: dict) -> bool:
    """``arrays`` lists distinct known names: the image, the model output, all three results
    or none (with or without the Jacobian), results exactly when ``method`` is set. Returns
    whether the file holds results."""
    listed, known = meta["arrays"], {"image", "representation", *_ARRAYS}
    if not all(isinstance(a, str) and a in known for a in listed):
        raise _Invalid(f"metadata 'arrays' must list names among {sorted(known)}: {listed!r}")
    results = {a for a in _RESULTS if a in listed}
    complete = {"image", "representation"} <= set(listed) and results in (set(), set(_RESULTS))
    if len(set(listed)) != len(listed) or not complete:
        raise _Invalid(
            "metadata 'arrays' must list image, representation and all or none of "
            f"{list(_RESULTS)}, each once: {listed!r}"
        )
    if bool(results) != (meta["method"] is not None):
        raise _Invalid(f"metadata 'method' {meta['method']!r} does not match the arrays {listed!r}")
    return bool(results)


def _specs(meta: dict) -> dict[str, tuple[frozenset, Any]]:
    """Per listed array: the descrs it may have and its shape (None for ``eigenvalues``,
    whose length ``n_dist`` the file decides); checks the metadata's shapes and lists."""
    image_shape = _shape(meta, "image_shape")
    rep_shape = _shape(meta, "representation_shape")
    n = math.prod(image_shape)
    if len(image_shape) > 1 and image_shape[0] != 1:
        raise _Invalid(f"metadata 'image_shape' {image_shape} is not one image (batch 1)")
    if meta["n"] != n:
        raise _Invalid(f"metadata 'n' = {meta['n']} but the image has {n} pixels")
    if meta["image_dtype"] not in _IMAGE_DESCR:
        raise _Invalid(
            f"metadata 'image_dtype' must be float32 or float64: {meta['image_dtype']!r}"
        )
    has_results = _check_listed(meta)
    _check_convergence(meta["convergence"], has_results)
    tail = image_shape[1:] if len(image_shape) > 1 else image_shape
    specs = {
        "image": (frozenset({_IMAGE_DESCR[meta["image_dtype"]]}), image_shape),
        "representation": (_FLOATS, rep_shape),
        "eigenvalues": (_FLOATS, None),
        "eigendistortions": (_FLOATS, tail),  # (n_dist, *tail)
        "eigenindex": (_INTS, ()),  # (n_dist,)
        "jacobian": (_FLOATS, (math.prod(rep_shape), n)),
    }
    return {a: specs[a] for a in meta["arrays"]}


# -- load ------------------------------------------------------------------------------------
def _stored(zf: zipfile.ZipFile) -> None:
    """Distinct members, stored uncompressed and unencrypted (as :func:`save` writes them, so
    reading a member never takes more memory than the file)."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _Invalid(f"it has duplicate members: {sorted(names)}")
    if any(i.compress_type != zipfile.ZIP_STORED or i.flag_bits & 0x1 for i in infos):
        raise _Invalid("its members must be stored uncompressed and unencrypted, as save does")


def _members(zf: zipfile.ZipFile, listed: list[str]) -> None:
    """Exactly ``metadata.json`` and the ``.npy`` arrays the metadata lists."""
    names = set(zf.namelist())
    expected = {"metadata.json", *(f"{a}.npy" for a in listed)}
    if names != expected:
        raise _Invalid(
            f"its members {sorted(names)} are not the metadata.json and .npy arrays its "
            f"metadata lists: missing {sorted(expected - names)}, unexpected "
            f"{sorted(names - expected)}"
        )


def _array(zf: zipfile.ZipFile, name: str, descrs: frozenset, shape: Any, n_dist: Any) -> Any:
    """One member, its header checked against ``descrs`` and ``shape`` before its body is
    read (``n_dist`` leads the shape of eigendistortions and eigenindex)."""
    member = f"{name}.npy"
    with zf.open(member) as fh:
        descr, got = _npy_header(fh, member)
        if n_dist is not None:
            shape = (n_dist, *shape)
        ok = got == shape if shape is not None else len(got) == 1 and got[0] >= 1
        if descr not in descrs or not ok:
            want = "(n_dist,) with n_dist >= 1" if shape is None else str(shape)
            raise _Invalid(
                f"member {member!r} has dtype {descr} and shape {got}; expected one of "
                f"{sorted(descrs)} and shape {want}"
            )
        return _npy_body(fh, member, descr, got)


def _within(diff: Any, size: Any, atol: float, rtol: float, xp: Any) -> Any:
    """``diff <= atol + rtol * size`` (entrywise, ``diff, size >= 0``) without overflow: the
    tolerances capped to the dtype's largest value, and ``rtol > 1`` applied by division."""
    top = float(xp.finfo(diff.dtype).max)
    excess = diff - min(atol, top)
    if rtol <= 1:
        return excess <= rtol * size
    return excess / min(rtol, top) <= size


def _check_values(arrays: dict[str, Any], n: int) -> None:
    """Finite results, eigenvalues >= 0, eigenindex in [0, n)."""
    xp = backends.get("numpy").xp
    for name in ("eigenvalues", "eigendistortions", "jacobian"):
        if name in arrays and not bool(xp.all(xp.isfinite(arrays[name]))):
            raise _Invalid(f"member '{name}.npy' contains NaN or infinite values")
    if "eigenvalues" in arrays:
        if not bool(xp.all(arrays["eigenvalues"] >= 0)):
            raise _Invalid("member 'eigenvalues.npy' has negative eigenvalues")
        index = arrays["eigenindex"]
        if not bool(xp.all((index >= 0) & (index < n))):
            raise _Invalid(f"member 'eigenindex.npy' has values outside [0, {n})")


def _read_archive(zf: zipfile.ZipFile) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked metadata and arrays of an open archive; _Invalid saying what is wrong."""
    _stored(zf)
    if "metadata.json" not in zf.namelist():
        raise _Invalid("no metadata.json: not an Eigendistortion file")
    try:
        meta = json.loads(zf.read("metadata.json"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _Invalid(f"metadata.json is not JSON ({exc})") from None
    _check_fields(meta)
    specs = _specs(meta)
    _members(zf, meta["arrays"])
    arrays: dict[str, Any] = {}
    for name in sorted(specs, key=lambda a: a != "eigenvalues"):  # eigenvalues fix n_dist
        descrs, shape = specs[name]
        n_dist = (
            arrays["eigenvalues"].shape[0] if name in ("eigendistortions", "eigenindex") else None
        )
        arrays[name] = _array(zf, name, descrs, shape, n_dist)
    _check_values(arrays, meta["n"])
    return meta, arrays


#: what a damaged archive raises inside zipfile (CRC, truncation, bad offsets, encodings)
_DAMAGED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
)


def read(path: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metadata, numpy arrays)`` of a saved file, every part checked; ValueError naming
    ``path`` and what is wrong when it is not a sound Eigendistortion file (the path must
    exist: FileNotFoundError otherwise)."""
    path = _file_path(path, to="load")
    with open(path, "rb") as fh:
        try:
            with zipfile.ZipFile(fh) as zf:
                return _read_archive(zf)
        except _Invalid as exc:
            reason = str(exc)
        except zipfile.BadZipFile as exc:
            reason = f"not an .npz archive, or a damaged one ({exc})"
        except _DAMAGED as exc:
            reason = f"a damaged .npz archive ({type(exc).__name__}: {exc})"
    raise ValueError(f"cannot load {path!r}: {reason}")


def _check_load_args(
    method: Any, raise_on_checks: Any, atol: Any, rtol: Any
) -> tuple[float, float]:
    """The arguments of ``load``, before the file is opened; ``(atol, rtol)`` as floats (a
    numpy scalar would turn the comparison into a numpy operation on the image)."""
    if method is not None and (not isinstance(method, str) or method not in METHODS):
        raise ValueError(f"method must be in {list(METHODS)} or None, got {method!r}")
    check_bool("raise_on_checks", raise_on_checks)
    return check_real("atol", atol, low=0.0), check_real("rtol", rtol, low=0.0)


def load(
    eig: Any,
    path: Any,
    *,
    method: str | None,
    raise_on_checks: bool,
    atol: float,
    rtol: float,
) -> None:
    """Fill the just-made ``eig`` with the results saved in ``path`` (see
    ``Eigendistortion.load``); nothing is assigned unless every check passes."""
    atol, rtol = _check_load_args(method, raise_on_checks, atol, rtol)
    if eig.eigenindex is not None:
        raise ValueError("load can only be called with a just-initialized Eigendistortion object")
    path = _file_path(path, to="load")
    meta, arrays = read(path)
    xp, device = backends.namespace_and_device(eig.image)
    adapter = backends.backend_of(xp)

    def native(a: Any, dtype: Any = None) -> Any:
        return adapter.asarray(a, dtype=dtype, device=device)

    def check(ok: bool, message: str, hard: bool = False) -> None:
        if ok:
            return
        message = f"{message} (file {path!r})"
        if raise_on_checks or hard:
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=4)

    if method is not None and meta["method"] != method:
        raise ValueError(
            f"method={method!r}, but the file {path!r} holds {meta['method']!r} "
            f"eigendistortions, not {method!r} ones"
        )
    dtype_name = adapter.dtype_name(eig.image.dtype)
    check(
        meta["image_dtype"] == dtype_name,
        f"Saved and initialized attribute image have different dtype: {meta['image_dtype']} and "
        f"{dtype_name}",
        hard=True,
    )
    for name, current in (("image", eig.image), ("representation", eig.representation)):
        # plenoptic's wording: "attribute image", "model output"
        what = "model output" if name == "representation" else f"attribute {name}"
        saved = arrays[name]
        check(
            tuple(saved.shape) == tuple(current.shape),
            f"Saved and initialized {what} have different shape: {tuple(saved.shape)} and "
            f"{tuple(current.shape)}",
            hard=True,
        )
        s = native(saved, current.dtype)
        close = bool(xp.all(_within(xp.abs(current - s), xp.abs(s), atol, rtol, xp)))
        check(
            close,
            f"Saved and initialized {what} have different values (atol={atol:g}, "
            f"rtol={rtol:g}): the file was made from another "
            + ("image" if name == "image" else "model (its output at the image differs)"),
        )
    dt = eig.image.dtype
    result = None
    if meta["method"] is not None:
        result = EigendistortionResult(
            meta["method"],
            native(arrays["eigendistortions"], dt),
            native(arrays["eigenvalues"], dt),
            native(arrays["eigenindex"], xp.int64),
            meta["convergence"],
        )
    jacobian = native(arrays["jacobian"], dt) if "jacobian" in arrays else None
    eig.restore(result, jacobian)
