"""Figures of eigendistortions and of the eigenvalues (matplotlib: the ``plot`` extra).

matplotlib is imported on first use, so ``refimpl`` imports without it (it is the one
library an algorithm package may import, from its plotting modules only: the import-linter
contract in pyproject.toml names this module and ``refimpl.attr.plot``). Arrays reach the
host through the backend adapter.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import backends
from refimpl.eigendistortion.eigendistortion import Eigendistortion
from refimpl.plotting import check_cmap, pyplot
from refimpl.validation import check_bool, check_callable, check_int, check_real, is_array

__all__ = ["display_eigendistortions", "plot_eigenvalues"]


def _axes_type() -> type:
    from matplotlib.axes import Axes

    return Axes


def _host(x: Any) -> Any:
    return backends.backend_of(x).to_numpy(x)


def _floats(x: Any) -> Any:
    """A float64 host copy: sums such as ``image + scale * distortion`` never overflow a
    narrower dtype (a scale of 1e39 on a float32 image)."""
    return _host(x).astype(float)


#: what the figures read of an eigendistortion object (all three kinds have them)
_ATTRIBUTES = ("image", "eigendistortions", "eigenvalues", "eigenindex")


class _View:
    """What the figures read, from a :class:`Eigendistortion`, the torch front end
    (``refimpl.torch.Eigendistortion``) or plenoptic's ``Eigendistortion``: the arrays,
    ``n_pixels`` (from the image's shape, the rule of all three), ``convergence`` and
    ``method`` where the object has them (plenoptic's has neither), and ``indexer`` computed
    from ``eigenindex`` (plenoptic's is ``_indexer``; a bool is refused here too)."""

    def __init__(self, eig: Any) -> None:
        self.image = eig.image
        self.eigendistortions = eig.eigendistortions
        self.eigenvalues = eig.eigenvalues
        self.eigenindex = eig.eigenindex
        shape = tuple(self.image.shape)
        self.n_pixels = math.prod(shape[1:] if len(shape) > 1 else shape)
        convergence = getattr(eig, "convergence", None)
        self.convergence = convergence if isinstance(convergence, dict) else {}
        method = getattr(eig, "method", None)
        self.method = method if isinstance(method, str) else None

    def indexer(self, idx: int) -> int:
        idx = check_int("idx", idx)
        n = self.n_pixels
        try:
            i = range(n)[idx]
        except IndexError:
            raise ValueError(
                f"idx={idx!r}: eigenindex must be the index of one of the vectors, in "
                f"[-{n}, {n}) (n = {n})"
            ) from None
        index = [int(v) for v in _host(self.eigenindex).reshape(-1).tolist()]
        if i not in index:
            raise ValueError(
                f"idx={idx!r}: eigenindex must be the index of one of the vectors: {idx!r} "
                f"(= {i}) is not among the synthesized "
                f"{index if len(index) <= 8 else index[:4] + ['...']}"
            )
        return index.index(i)


def _method(eig: _View) -> str:
    return "" if eig.method is None else f" ({eig.method})"


def _check_eig(eig: Any) -> _View:
    """The view of ``eig``: a :class:`Eigendistortion`, or an object with its attributes
    (the torch front end, plenoptic's ``Eigendistortion``); TypeError for anything else."""
    if isinstance(eig, Eigendistortion) or (
        not is_array(eig) and all(hasattr(eig, a) for a in _ATTRIBUTES)
    ):
        view = _View(eig)
        if view.eigendistortions is None or is_array(view.eigendistortions):
            return view
    raise TypeError(
        "eig must be an Eigendistortion (refimpl.eigendistortion, refimpl.torch or "
        f"plenoptic), got {eig!r} ({type(eig).__name__})"
    )


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


def _ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, ..."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _visibility(index: int, n: int) -> str:
    """How visible, to the model, the eigendistortion with ``index`` in the decreasing
    spectrum of ``n`` eigenvalues is: ``"most visible"`` for 0, ``"least visible"`` for
    ``n - 1``, ``"2nd most visible"``, ``"3rd least visible"``, ... within 10 of either
    end, ``""`` in between."""
    if n == 1:
        return "the only one"
    from_top, from_bottom = index, n - 1 - index
    if min(from_top, from_bottom) >= 10:
        return ""
    if from_top <= from_bottom:
        return "most visible" if from_top == 0 else f"{_ordinal(from_top + 1)} most visible"
    return "least visible" if from_bottom == 0 else f"{_ordinal(from_bottom + 1)} least visible"


def display_eigendistortions(
    eig: Any,
    eigenindex: int | list[int] = (0, -1),
    distortion_scale: float | list[float] = 5.0,
    *,
    process_image: Any = None,
    suptitle: str = "Eigendistortions",
    cmap: str = "gray",
) -> Any:
    r"""The image and its eigendistortions, side by side (after plenoptic 2.1.1's
    ``eigendistortion_imshow_all``).

    The first column is the image (``process_image`` applied), centred on the figure's
    height. Then one column per index: above, the distortion alone on a grey scale
    symmetric about 0, titled with its index in the full decreasing spectrum, how visible
    it is to the model (``"index 0 (most visible)"``, ``"index 899 (least visible)"``,
    ``"index 1 (2nd most visible)"``) and its eigenvalue; below,
    ``process_image(image + scale * distortion)`` on the image's grey scale (values as
    computed, not clipped). plenoptic leaves the top-left panel empty and titles the panels
    ``Eigendistortion[i]`` only.

    Parameters
    ----------
    eig : Eigendistortion
        A synthesized result: this package's, ``refimpl.torch``'s or plenoptic's object.
    eigenindex : int or list of int
        Indices into the full decreasing spectrum (``-1``: the smallest eigenvalue, index
        ``n - 1``); each must be one of ``eig.eigenindex``.
    distortion_scale : float or list of float
        The amplitude of the distortion added to the image, one for all or one per index.
    process_image : callable, optional
        Applied to every picture of the bottom row and to the image before display
        (``lambda a: a.clip(0, 1)``).
    suptitle : str
        The figure's title.
    cmap : str or matplotlib Colormap
        The colormap of every panel (grey by default).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes`` is ``[image, distortion_1, ..., distortion_k, sum_1, ..., sum_k]``.
    """
    eig = _check_eig(eig)
    indices = _indices(eigenindex)
    scales = _scales(distortion_scale, len(indices))
    check_callable("process_image", process_image, optional=True)
    plt = pyplot()
    check_cmap(cmap, example="gray")
    if eig.eigendistortions is None:
        raise ValueError("No eigendistortions synthesized: call synthesize() first")
    positions = [eig.indexer(i) for i in indices]
    n = eig.n_pixels
    full = [range(n)[i] for i in indices]
    image = _floats(eig.image)
    dists = _floats(eig.eigendistortions)
    lam = _floats(eig.eigenvalues).reshape(-1)  # plenoptic's is 0-d for randomized_svd, k=1

    def process(a: Any) -> Any:
        return a if process_image is None else _processed(process_image, a)

    base = _as_picture(process(image))
    lo, hi = float(base.min()), float(base.max())
    k = len(indices)
    fig = plt.figure(figsize=(3 * (k + 1), 6.6), layout="constrained")
    grid = fig.add_gridspec(2, k + 1)
    original = fig.add_subplot(grid[:, 0])  # both rows: no empty panel
    tops = [fig.add_subplot(grid[0, c]) for c in range(1, k + 1)]
    bottoms = [fig.add_subplot(grid[1, c]) for c in range(1, k + 1)]
    original.imshow(base, cmap=cmap, vmin=lo, vmax=hi)
    original.set_title("Original image")
    for top, bottom, pos, idx, scale in zip(tops, bottoms, positions, full, scales):
        d = dists[pos].reshape(image.shape[1:] if image.ndim > 1 else image.shape)
        pic = _as_picture(d)
        bound = float(abs(pic).max()) or 1.0
        top.imshow(pic, cmap=cmap, vmin=-bound, vmax=bound)
        how = _visibility(idx, n)
        top.set_title(f"index {idx}" + (f" ({how})" if how else "") + f"\nλ = {lam[pos]:.3g}")
        distorted = image + scale * d.reshape(image.shape)
        bottom.imshow(_as_picture(process(distorted)), cmap=cmap, vmin=lo, vmax=hi)
        bottom.set_title(f"image + {scale:g} × distortion {idx}")
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(suptitle)
    return fig


def _residuals(eig: Any, count: int) -> Any:
    """The absolute residuals ``||F v - lambda v||`` of the pairs, in the order of
    ``eigenvalues`` (top block, then bottom), or None where the method reports none."""
    residuals: list[float] = []
    for block in ("top", "bottom"):
        info = eig.convergence.get(block)
        if info and "residuals" in info:
            residuals += [float(r) * float(info["scale"]) for r in info["residuals"]]
    if len(residuals) != count:
        return None
    return residuals


def _blocks(index: list[int]) -> list[list[int]]:
    """Positions in ``index`` grouped into runs of consecutive indices."""
    runs: list[list[int]] = []
    for pos, i in enumerate(index):
        if runs and i == index[runs[-1][-1]] + 1:
            runs[-1].append(pos)
        else:
            runs.append([pos])
    return runs


def _index_axis(index: list[int], n: int) -> tuple[list[float], list[tuple]]:
    """x positions of the eigenvalues, and the gaps ``(x_from, x_to, first, last)`` where
    the indices ``first..last`` of the spectrum were not computed.

    The whole spectrum (``exact``), or indices out of order, are drawn at their indices.
    Otherwise each run of consecutive indices keeps its spacing of 1 and every run of
    indices not computed (between the top and the bottom block, after the top block of a
    randomized SVD) becomes a gap of fixed width, so that a few points of a long spectrum
    do not sit at the edges of an empty axes."""
    if len(index) == n or any(a >= b for a, b in zip(index, index[1:])):
        return [float(i) for i in index], []
    width = max(1.0, 0.3 * len(index) - 1)
    xs: list[float] = []
    gaps = []
    x, previous = 0.0, -1
    for i in [*index, n]:  # n: closes a gap after the last index
        if i > previous + 1:
            gaps.append((x - 0.5, x - 0.5 + width, previous + 1, i - 1))
            x += width
        if i < n:
            xs.append(x)
            x += 1
        previous = i
    return xs, gaps


def _ticks(xs: list[float], index: list[int], n: int, gaps: list) -> tuple[list, list]:
    """Tick positions and labels (the eigenvalue indices): every computed index when there
    are few, else a handful per block including its ends."""
    from matplotlib.ticker import MaxNLocator

    if not gaps:
        span = (0, n - 1)
        ticks = [t for t in MaxNLocator(nbins=6, integer=True).tick_values(*span) if 0 <= t < n]
        far = [t for t in ticks if n - 1 - t > 0.08 * (n - 1)]
        ticks = sorted({int(t) for t in far} | {n - 1})
        return ticks, [str(t) for t in ticks]
    if len(index) <= 12:
        return xs, [str(i) for i in index]
    chosen: list[int] = []
    for run in _blocks(index):
        first, last = index[run[0]], index[run[-1]]
        inner = MaxNLocator(nbins=3, integer=True).tick_values(first, last)
        keep = {first, last} | {
            int(t)
            for t in inner
            if first < t < last and min(t - first, last - t) > 0.25 * (last - first)
        }
        chosen += [run[0] + (i - first) for i in sorted(keep)]
    return [xs[p] for p in chosen], [str(index[p]) for p in chosen]


def plot_eigenvalues(eig: Any, ax: Any = None, *, logy: bool = True) -> Any:
    r"""Each computed eigenvalue of :math:`F = J^\top J` against its index in the full
    decreasing spectrum, with its residual :math:`\lVert Fv - \lambda v\rVert` as an error
    bar where the method reports one (``power``, ``eigsh``, ``randomized_svd``; not
    ``exact``). plenoptic 2.1.1 has no such plot.

    - Markers for every eigenvalue, joined by a line within each run of consecutive indices
      (never across indices that were not computed).
    - x: ``"eigenvalue index"``. The whole spectrum (``exact``) is drawn at its indices,
      the axis spanning ``[0, n - 1]`` plus a margin. Otherwise (``power``, ``eigsh``: the
      top k and the bottom k; ``randomized_svd``: the top k) each run of consecutive
      indices keeps its spacing of 1, the ticks name the actual indices, and each range of
      indices not computed becomes a shaded gap of fixed width labelled with that range,
      so four points do not sit at the two edges of an empty axes.
    - y: ``"eigenvalue"``, on a log scale when ``logy`` (the spectrum spans many decades).
      Zeros have no logarithm: they are drawn as triangles two decades below the smallest
      positive value, with their own legend entry. The limits contain every marker and
      every bar; a bar whose lower end :math:`\lambda - r` is not positive runs to the
      bottom edge (its interval contains 0). On a linear scale the limits contain 0 too.
    - The title says how many eigenvalues of n are shown, unless ``ax`` has one already.

    Parameters
    ----------
    eig : Eigendistortion
        A synthesized result: this package's, ``refimpl.torch``'s or plenoptic's object.
    ax : matplotlib Axes, optional
        Where to draw; a new figure of 5.5 x 3.8 inches otherwise.
    logy : bool
        Log scale on y (default).

    Returns
    -------
    matplotlib.axes.Axes
    """
    eig = _check_eig(eig)
    check_bool("logy", logy)
    plt = pyplot()
    if ax is not None and not isinstance(ax, _axes_type()):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {ax!r} ({type(ax).__name__})")
    if eig.eigenvalues is None:
        raise ValueError("No eigenvalues synthesized: call synthesize() first")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    lam = [float(v) for v in _floats(eig.eigenvalues).reshape(-1).tolist()]
    index = [int(i) for i in _host(eig.eigenindex).reshape(-1).tolist()]
    n = eig.n_pixels
    res = _residuals(eig, len(lam))
    err = res if res is not None else [0.0] * len(lam)
    xs, gaps = _index_axis(index, n)
    highs = [v + r for v, r in zip(lam, err)]
    lows = [v - r for v, r in zip(lam, err)]
    top = max(highs)
    shown = list(lam)
    zeros: list[int] = []
    if logy:
        positive = [v for v in lam + lows if v > 0]
        top = top if top > 0 else 1.0
        smallest = min(positive) if positive else top
        zeros = [p for p, v in enumerate(lam) if v <= 0]
        if zeros:
            smallest /= 100.0  # two decades below the smallest positive value
            for p in zeros:
                shown[p] = smallest
        pad = max(0.15, 0.05 * math.log10(top / smallest))
        ylim = (smallest / 10**pad, top * 10**pad)
        ax.set_yscale("log")
    else:
        low = min(0.0, min(lows))
        pad = 0.05 * (top - low) or 1.0
        ylim = (low - pad, top + pad)
    many = len(lam) > 50
    for r, run in enumerate(_blocks(index)):
        ax.plot(
            [xs[p] for p in run],
            [shown[p] for p in run],
            linestyle="-",
            color="C0",
            marker="." if many else "o",
            markersize=3 if many else 5,
            linewidth=1,
            label=("eigenvalues" + _method(eig)) if r == 0 else None,
            gid="eigenvalues",
        )
    if zeros:
        ax.plot(
            [xs[p] for p in zeros],
            [shown[p] for p in zeros],
            "v",
            color="C1",
            label="0 (no logarithm: drawn at the bottom)",
            gid="zeros",
        )
    if res is not None:
        below = [s - max(lo, ylim[0]) for s, lo in zip(shown, lows)]
        above = [hi - s for s, hi in zip(shown, highs)]
        ax.errorbar(
            xs,
            shown,
            yerr=[[max(b, 0.0) for b in below], [max(a, 0.0) for a in above]],
            fmt="none",
            ecolor="C3",
            elinewidth=1,
            capsize=3,
            label=r"residual $\|Fv - \lambda v\|$",
        )
    for x0, x1, first, last in gaps:
        ax.axvspan(x0, x1, color="0.92", zorder=0)
        what = f"{first}" if first == last else f"{first}…{last}"
        ax.text(
            (x0 + x1) / 2,
            0.5,
            f"{what}\nnot computed",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="center",
            rotation=90,
            fontsize="small",
            color="0.4",
        )
    if gaps:
        xlim = (min(xs[0] - 0.7, gaps[0][0]), max(xs[-1] + 0.7, gaps[-1][1]))
    else:
        margin = max(0.5, 0.03 * (n - 1))
        xlim = (-margin, n - 1 + margin)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ticks, labels = _ticks(xs, index, n, gaps)
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel(r"eigenvalue of $F = J^\top J$")
    if not ax.get_title():
        ax.set_title(f"{len(lam)} of {n} eigenvalues{_method(eig)}")
    ax.legend(loc="best", fontsize="small")
    return ax
