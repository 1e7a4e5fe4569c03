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
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
import warnings
import zipfile
from typing import Any

import backends
from refimpl.eigendistortion.options import EigendistortionResult

FORMAT = "refimpl.Eigendistortion"
VERSION = 1
_ARRAYS = ("eigenvalues", "eigendistortions", "eigenindex", "jacobian")
#: struct format characters of the little-endian dtypes we store
_STRUCT = {"<f2": "e", "<f4": "f", "<f8": "d", "<i8": "q", "<i4": "i", "|b1": "?"}


# -- .npy entries -------------------------------------------------------------------------
def _npy_bytes(a: Any) -> bytes:
    """The ``.npy`` (format 1.0) encoding of a host numpy array ``a``."""
    header = {"descr": a.dtype.str, "fortran_order": False, "shape": tuple(a.shape)}
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64  # the header ends on a 64-byte boundary
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + a.tobytes(order="C")


def _npy_array(data: bytes, name: str) -> Any:
    """A numpy array (through the numpy adapter) from ``.npy`` bytes."""
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"entry {name!r} is not an .npy array")
    major = data[6]
    size, start = (2, 8) if major == 1 else (4, 8)
    hlen = int.from_bytes(data[start : start + size], "little")
    body_at = start + size + hlen
    header = ast.literal_eval(data[start + size : body_at].decode("latin1"))
    descr, shape = header["descr"], tuple(header["shape"])
    if header["fortran_order"] or descr not in _STRUCT or sys.byteorder != "little":
        raise ValueError(f"entry {name!r} has an unsupported layout ({header})")
    body = bytearray(data[body_at:])  # a writable copy: the arrays may be modified later
    view = memoryview(body).cast(_STRUCT[descr], shape or (1,))
    a = backends.get("numpy").asarray(view)
    return a if shape else a.reshape(())


def _host(x: Any) -> Any:
    return backends.backend_of(x).to_numpy(x)


# -- save ------------------------------------------------------------------------------------
def save(eig: Any, path: Any) -> None:
    """Write ``eig`` to ``path`` atomically (temporary file, then ``os.replace``)."""
    path = os.fspath(path)
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
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: the directory of path {path!r} does not exist")
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


# -- load -----------------------------------------------------------------------------------
def read(path: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metadata, numpy arrays)`` of a saved file; ValueError if it is not one."""
    path = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path!r} is not an Eigendistortion file (not an .npz archive)") from None
    with zf:
        names = set(zf.namelist())
        if "metadata.json" not in names:
            raise ValueError(f"{path!r} is not an Eigendistortion file (no metadata.json)")
        meta = json.loads(zf.read("metadata.json"))
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{path!r} holds {meta.get('format')!r}, not a saved Eigendistortion ({FORMAT})"
            )
        if meta.get("version", 0) > VERSION:
            raise ValueError(f"{path!r} has format version {meta['version']} > {VERSION}")
        arrays = {n[:-4]: _npy_array(zf.read(n), n) for n in sorted(names) if n.endswith(".npy")}
    return meta, arrays


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
    ``Eigendistortion.load``)."""
    if eig.eigenindex is not None:
        raise ValueError("load can only be called with a just-initialized Eigendistortion object")
    meta, arrays = read(path)
    xp, device = backends.namespace_and_device(eig.image)
    adapter = backends.backend_of(xp)

    def native(a: Any, dtype: Any = None) -> Any:
        return adapter.asarray(a, dtype=dtype, device=device)

    def check(ok: bool, message: str, hard: bool = False) -> None:
        if ok:
            return
        if raise_on_checks or hard:
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=4)

    if method is not None and meta.get("method") != method:
        raise ValueError(
            f"the file holds {meta.get('method')!r} eigendistortions, not {method!r} ones"
        )
    dtype_name = adapter.dtype_name(eig.image.dtype)
    check(
        meta["image_dtype"] == dtype_name,
        f"Saved and initialized image have different dtypes: {meta['image_dtype']} and "
        f"{dtype_name}",
        hard=True,
    )
    for name, current in (("image", eig.image), ("representation", eig.representation)):
        what = "model output" if name == "representation" else name
        saved = arrays[name]
        check(
            tuple(saved.shape) == tuple(current.shape),
            f"Saved and initialized {what} have different shapes: {tuple(saved.shape)} and "
            f"{tuple(current.shape)}",
            hard=True,
        )
        s = native(saved, current.dtype)
        close = bool(xp.all(xp.abs(current - s) <= atol + rtol * xp.abs(s)))
        check(
            close,
            f"Saved and initialized attribute {what} have different values (atol={atol:g}, "
            f"rtol={rtol:g}): the file was made from another "
            + ("image" if name == "image" else "model (its output at the image differs)"),
        )
    dt = eig.image.dtype
    result = None
    if "eigenvalues" in arrays:
        result = EigendistortionResult(
            meta.get("method"),
            native(arrays["eigendistortions"], dt),
            native(arrays["eigenvalues"], dt),
            native(arrays["eigenindex"], xp.int64),
            meta.get("convergence") or {},
        )
    jacobian = native(arrays["jacobian"], dt) if "jacobian" in arrays else None
    eig.restore(result, jacobian)
