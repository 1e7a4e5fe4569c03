"""The result files of :func:`refimpl.distributed.map_dataset`: one ``.npz`` per item.

A result file is a zip archive that ``numpy.load(path)`` reads without pickle: first
``metadata.json``, then one ``NAME.npy`` per array. The metadata says which item, seed and
function made the file, and how the arrays came back from ``fn``::

    {"format": "refimpl.distributed.map_dataset", "version": 1,
     "index": 3, "seed": 0, "item": "sha256:...",
     "function": {"name": "mymodule.explain", "code": "sha256:..."},
     "kind": "dict", "arrays": ["saliency", "eigenvalues"]}

``kind`` is how ``fn`` returned its result and how :func:`load_result` gives it back:

* ``"array"``: one array (a numpy array, a torch tensor, any array-API array, or a Python
  number), stored as ``result.npy``;
* ``"tuple"``: a tuple or list of arrays, stored as ``0.npy``, ``1.npy``, ..., given back
  as a tuple;
* ``"dict"``: a mapping of names (letters, digits, ``_``, ``-``, ``.``, not starting with
  ``.``) to arrays, stored as ``NAME.npy`` in the mapping's order, given back as a dict.

Arrays of any backend are copied to the host as numpy arrays (a torch tensor is detached
and moved to the CPU), in C order. The archive's bytes depend only on the metadata and the
arrays (every member carries the same fixed date), so the same result gives the same file
on any machine, in any process and at any time: files can be compared byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

import backends

__all__ = ["FORMAT", "VERSION", "encode", "load_result", "read_metadata", "result_name"]

FORMAT = "refimpl.distributed.map_dataset"
VERSION = 1
METADATA = "metadata.json"
#: the date of every member (zip's earliest): the bytes do not depend on when they were written
_DATE = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
#: a temporary file of :func:`write_atomic` for the result file ``NNNNNN.npz``
_TEMPORARY = re.compile(r"\.\d{6,}\.npz\..+\.tmp")


def result_name(index: int) -> str:
    """The file name of item ``index``'s result: ``000042.npz`` (six digits at least)."""
    return f"{index:06d}.npz"


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file :func:`write_atomic` left behind (a writer
    killed before its ``os.replace``)."""
    return _TEMPORARY.fullmatch(name) is not None


# -- results to arrays -----------------------------------------------------------------------
def _host(x: Any, what: str) -> np.ndarray:
    """``x`` as a numpy array in C order (any backend's array, a numpy scalar or a Python
    number); TypeError for anything else."""
    if isinstance(x, np.ndarray | np.generic | bool | int | float | complex):
        out = np.asarray(x)
    else:
        try:
            adapter = backends.backend_of(x)
        except TypeError:
            raise TypeError(
                f"{what} must be an array (numpy, torch, any array-API library) or a number, "
                f"got {type(x).__name__}"
            ) from None
        out = np.asarray(adapter.to_numpy(x))
    if out.dtype.hasobject:
        raise TypeError(f"{what} has dtype object, which a result file cannot hold (no pickle)")
    return np.asarray(out, order="C")


def as_arrays(result: Any) -> tuple[str, dict[str, np.ndarray]]:
    """``(kind, {name: array})`` for a result of ``fn`` (see the module docstring)."""
    if isinstance(result, Mapping):
        arrays = {}
        for name, value in result.items():
            if not isinstance(name, str) or _NAME.fullmatch(name) is None:
                raise ValueError(
                    "the keys of a dict result must be names of letters, digits, '_', '-' "
                    f"and '.' (not starting with '.'), got {name!r}"
                )
            arrays[name] = _host(value, f"result[{name!r}]")
        return "dict", arrays
    if isinstance(result, tuple | list):
        return "tuple", {str(i): _host(v, f"result[{i}]") for i, v in enumerate(result)}
    if result is None:
        raise TypeError(
            "fn returned None: return the arrays to store (an array, a tuple or a dict)"
        )
    return "array", {"result": _host(result, "the result")}


# -- the archive -----------------------------------------------------------------------------
def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def encode(meta: dict, result: Any) -> bytes:
    """The bytes of the result file of ``result`` with ``meta`` (index, seed, item,
    function); ``kind`` and ``arrays`` are added from the result."""
    kind, arrays = as_arrays(result)
    meta = {**meta, "format": FORMAT, "version": VERSION, "kind": kind, "arrays": list(arrays)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        _member(zf, METADATA, json.dumps(meta, indent=1, sort_keys=True).encode())
        for name, array in arrays.items():
            _member(zf, f"{name}.npy", _npy_bytes(array))
    return buffer.getvalue()


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent, its old content, or
    ``data`` complete: a temporary file in the same folder, flushed to disk, then renamed
    over ``path`` (``os.replace`` is atomic), and the folder's entry flushed too."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Flush the rename to disk (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading ---------------------------------------------------------------------------------
def _metadata(zf: zipfile.ZipFile) -> dict:
    meta = json.loads(zf.read(METADATA))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} result file")
    if meta.get("version") != VERSION:
        raise ValueError(f"format version {meta.get('version')!r}, this reader knows {VERSION}")
    return meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a result file (index, seed, item, function, kind, arrays)."""
    with zipfile.ZipFile(os.fspath(path)) as zf:
        return _metadata(zf)


def load_result(path: str | os.PathLike) -> Any:
    """The result stored in ``path``, in the form ``fn`` returned it: one numpy array, a
    tuple of them, or a dict of them (torch tensors come back as numpy arrays)."""
    with zipfile.ZipFile(os.fspath(path)) as zf:
        meta = _metadata(zf)
        arrays = {}
        for name in meta["arrays"]:
            with zf.open(f"{name}.npy") as fh:
                arrays[name] = np.lib.format.read_array(fh, allow_pickle=False)
    if meta["kind"] == "array":
        return arrays["result"]
    if meta["kind"] == "tuple":
        return tuple(arrays.values())
    return arrays


def why_not_finished(path: str, expected: dict) -> str | None:
    """None when ``path`` is a complete result file whose metadata has ``expected``'s
    values (index, seed, item, function); otherwise what is wrong with it, in words."""
    try:
        with zipfile.ZipFile(path) as zf:
            meta = _metadata(zf)
            names = [METADATA, *(f"{a}.npy" for a in meta.get("arrays", []))]
            if zf.namelist() != names:
                return f"its members {zf.namelist()} are not {names}"
            bad = zf.testzip()  # reads every member and checks its CRC
            if bad is not None:
                return f"member {bad} is damaged"
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        return f"it cannot be read ({type(exc).__name__}: {exc})"
    for key, value in expected.items():
        if meta.get(key) != value:
            what = {"function": "another function", "item": "another item"}.get(key, key)
            if key in ("function", "item"):
                return f"it was written for {what} ({key} {meta.get(key)!r}, now {value!r})"
            return f"its {key} is {meta.get(key)!r}, not {value!r}"
    return None
