"""Figures of eigendistortions and of the eigenvalues (matplotlib: the ``plot`` extra).

matplotlib is imported on first use, so ``refimpl`` imports without it (it is the one
library an algorithm package may import: the import-linter contract in pyproject.toml names
this exception). Arrays reach the host through the backend adapter.
"""

from __future__ import annotations

import numbers
from typing import Any

import backends
from refimpl.eigendistortion.eigendistortion import Eigendistortion
from refimpl.validation import check_bool, check_callable, check_int, check_real, is_array

__all__ = ["display_eigendistortions", "plot_eigenvalues"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'refimpl[plot]' (or matplotlib)"
        ) from None
    return plt


def _axes_type() -> type:
    from matplotlib.axes import Axes

    return Axes


def _host(x: Any) -> Any:
    return backends.backend_of(x).to_numpy(x)


def _floats(x: Any) -> Any:
    """A float64 host copy: sums such as ``image + scale * distortion`` never overflow a
    narrower dtype (a scale of 1e39 on a float32 image)."""
    return _host(x).astype(float)


def _check_eig(eig: Any) -> None:
    if not isinstance(eig, Eigendistortion):
        raise TypeError(
            "eig must be a refimpl.eigendistortion.Eigendistortion, got "
            f"{eig!r} ({type(eig).__name__})"
        )


def _check_cmap(cmap: Any) -> None:
    """None (matplotlib's default), the name of a registered colormap, or a Colormap."""
    from matplotlib import colormaps
    from matplotlib.colors import Colormap

    if cmap is None or isinstance(cmap, Colormap):
        return
    if not isinstance(cmap, str):
        raise TypeError(
            f"cmap must be a colormap name, a matplotlib Colormap or None, got {cmap!r} "
            f"({type(cmap).__name__})"
        )
    if cmap not in colormaps:
        raise ValueError(f"cmap must name a matplotlib colormap (such as 'gray'), got {cmap!r}")


def _processed(process_image: Any, a: Any) -> Any:
    """``process_image(a)``, which must be an array (a TypeError naming it otherwise)."""
    out = process_image(a)
    if not is_array(out) or out.ndim < 1:
        raise TypeError(
            f"process_image must return an array of at least one axis, got {out!r} "
            f"({type(out).__name__})"
        )
    return out


def _as_picture(a: Any) -> Any:
    """A host array shaped for ``imshow``: (H, W) for one channel, (H, W, 3) for RGB, a row
    for a 1-D image; other channel counts show their first channel."""
    if a.ndim == 1:
        return a.reshape(1, -1)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        return a[0] if a.shape[0] != 3 else a.transpose(1, 2, 0)
    return a


def _items(value: Any, single: type) -> list | None:
    """``[value]`` for one ``single`` (a bool is not a number), ``list(value)`` for a
    sequence (list, tuple, range, 1-d array), None (the caller's TypeError) otherwise."""
    if isinstance(value, single) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        return None
    return list(value)


def _indices(eigenindex: Any) -> list[int]:
    """One index or a non-empty list of them, each an int (not a bool)."""
    items = _items(eigenindex, numbers.Integral)
    if items is None:
        raise TypeError(
            f"eigenindex must be an int or a list of ints, got {eigenindex!r} "
            f"({type(eigenindex).__name__})"
        )
    if not items:
        raise ValueError("eigenindex must name at least one eigendistortion")
    return [check_int("eigenindex", i) for i in items]


def _scales(distortion_scale: Any, count: int) -> list[float]:
    """One finite amplitude for every index, or a list with one per index."""
    items = _items(distortion_scale, numbers.Real)
    if items is None:
        raise TypeError(
            "distortion_scale must be a real number or a list of them, got "
            f"{distortion_scale!r} ({type(distortion_scale).__name__})"
        )
    scales = [check_real("distortion_scale", s) for s in items]
    if isinstance(distortion_scale, numbers.Real):
        return scales * count
    if len(scales) != count:
        raise ValueError(
            "If distortion_scale is a list, it must have one entry per eigenindex: got "
            f"{len(scales)} scales for {count} indices"
        )
    return scales


def display_eigendistortions(
    eig: Any,
    eigenindex: int | list[int] = (0, -1),
    distortion_scale: float | list[float] = 5.0,
    *,
    process_image: Any = None,
    suptitle: str = "Eigendistortions",
    cmap: str = "gray",
) -> Any:
    """The image and its eigendistortions, side by side (plenoptic's
    ``eigendistortion_imshow_all`` layout).

    Top row: each distortion (symmetric grey scale). Bottom row: the image, then
    ``image + scale * distortion`` for each one, on the image's grey scale (values are
    shown as computed, not clipped). ``eigenindex``: indices into the full decreasing
    spectrum (``-1``: the smallest); ``distortion_scale``: one amplitude, or one per index;
    ``process_image``: applied to every image of the bottom row before display. Returns the
    figure.
    """
    _check_eig(eig)
    indices = _indices(eigenindex)
    scales = _scales(distortion_scale, len(indices))
    check_callable("process_image", process_image, optional=True)
    plt = _pyplot()
    _check_cmap(cmap)
    if eig.eigendistortions is None:
        raise ValueError("No eigendistortions synthesized: call synthesize() first")
    positions = [eig.indexer(i) for i in indices]
    n = eig.n_pixels
    full = [range(n)[i] for i in indices]
    image = _floats(eig.image)
    dists = _floats(eig.eigendistortions)

    def process(a: Any) -> Any:
        return a if process_image is None else _processed(process_image, a)

    base = _as_picture(process(image))
    lo, hi = float(base.min()), float(base.max())
    fig, axes = plt.subplots(
        2, len(indices) + 1, figsize=(3 * (len(indices) + 1), 6), squeeze=False
    )
    axes[0, 0].axis("off")
    axes[1, 0].imshow(base, cmap=cmap, vmin=lo, vmax=hi)
    axes[1, 0].set_title("Original image")
    for col, (pos, idx, scale) in enumerate(zip(positions, full, scales), start=1):
        d = dists[pos].reshape(image.shape[1:] if image.ndim > 1 else image.shape)
        pic = _as_picture(d)
        bound = float(abs(pic).max()) or 1.0
        axes[0, col].imshow(pic, cmap=cmap, vmin=-bound, vmax=bound)
        axes[0, col].set_title(f"Eigendistortion[{idx}]")
        distorted = image + scale * d.reshape(image.shape)
        axes[1, col].imshow(_as_picture(process(distorted)), cmap=cmap, vmin=lo, vmax=hi)
        axes[1, col].set_title(f"{scale:g} * Eigendistortion[{idx}]")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(suptitle, y=1.0, va="bottom")
    fig.tight_layout()
    return fig


def plot_eigenvalues(eig: Any, ax: Any = None, *, logy: bool = True) -> Any:
    """Eigenvalue against its index in the full spectrum (log scale by default), with each
    pair's residual as an error bar where the method reports one. Returns the axes."""
    _check_eig(eig)
    check_bool("logy", logy)
    plt = _pyplot()
    if ax is not None and not isinstance(ax, _axes_type()):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {ax!r} ({type(ax).__name__})")
    if eig.eigenvalues is None:
        raise ValueError("No eigenvalues synthesized: call synthesize() first")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    lam = _floats(eig.eigenvalues)
    index = _host(eig.eigenindex)
    residuals = []
    for block in ("top", "bottom"):
        info = eig.convergence.get(block)
        if info and "residuals" in info:
            residuals += [r * info["scale"] for r in info["residuals"]]
    if logy:
        tiny = lam[lam > 0].min() if (lam > 0).any() else 1.0
        lam = lam.clip(tiny * 1e-3, None)  # zeros have no logarithm: drawn at the bottom
        ax.set_yscale("log")
    marker = "." if len(lam) > 50 else "o"
    ax.plot(index, lam, marker, label=f"eigenvalues ({eig.method})")
    if len(residuals) == len(lam):
        ax.errorbar(index, lam, yerr=residuals, fmt="none", ecolor="C3", label="residual")
    ax.set_xlabel("eigenindex")
    ax.set_ylabel("eigenvalue of F = J^T J")
    ax.legend(loc="best", fontsize="small")
    return ax
