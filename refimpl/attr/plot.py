r"""Pictures of image attributions (matplotlib: the ``plot`` extra), after captum 0.9.0's
``captum.attr.visualization.visualize_image_attr``.

matplotlib is imported on the first call, so ``import refimpl.attr`` works without it (the
import-linter contract in pyproject.toml names this module among the few in ``refimpl``
allowed to import it). Arrays of any backend reach the host through the backend
adapter (``backends.backend_of(x).to_numpy(x)``): no torch is needed.
"""

from __future__ import annotations

import math
from typing import Any

import backends
from refimpl.plotting import check_cmap, pyplot
from refimpl.validation import check_bool, check_choice, check_real, is_array

__all__ = ["cumulative_sum_threshold", "normalize_attr", "visualize_image_attr"]

VISUALIZATION_METHODS = (
    "heat_map",
    "blended_heat_map",
    "original_image",
    "masked_image",
    "alpha_scaling",
)
SIGNS = ("all", "positive", "negative", "absolute_value")

#: default colormaps: a diverging map for signed values, the matching halves for one sign
DEFAULT_CMAPS = {
    "all": "RdBu_r",
    "positive": "Reds",
    "negative": "Blues",
    "absolute_value": "Greys",
}


def _host(name: str, x: Any) -> Any:
    """A float64 host (numpy) copy of the real array ``x`` of any backend."""
    if not is_array(x):
        raise TypeError(f"{name} must be an array, got {x!r} ({type(x).__name__})")
    try:
        adapter = backends.backend_of(x)
    except TypeError as exc:
        raise TypeError(f"{name} must be an array of a known library ({exc})") from None
    xp = adapter.xp
    if xp.isdtype(x.dtype, ("bool", "complex floating")):
        raise TypeError(f"{name} must have a real (integer or floating) dtype, got {x.dtype}")
    if xp.isdtype(x.dtype, "real floating") and x.dtype not in (xp.float32, xp.float64):
        x = xp.astype(x, xp.float32)  # float16, bfloat16: numpy may not hold them
    return adapter.to_numpy(x).astype(float)


def _fig_and_axis(plt_fig_axis: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` from ``plt_fig_axis``; a sequence or array of axes gives its first
    (as captum does)."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    if not isinstance(plt_fig_axis, (tuple, list)) or len(plt_fig_axis) != 2:
        raise TypeError(
            "plt_fig_axis must be None or a (figure, axes) pair, got "
            f"{plt_fig_axis!r} ({type(plt_fig_axis).__name__})"
        )
    fig, ax = plt_fig_axis
    if not isinstance(ax, Axes) and hasattr(ax, "__iter__"):
        ax = next(iter(getattr(ax, "flat", ax)), None)
    if not isinstance(fig, (Figure, SubFigure)) or not isinstance(ax, Axes):
        raise TypeError(
            "plt_fig_axis must be a (matplotlib Figure, matplotlib Axes) pair, got "
            f"({type(fig).__name__}, {type(ax).__name__})"
        )
    return fig, ax


def _fig_size(fig_size: Any) -> tuple[float, float]:
    if not isinstance(fig_size, (tuple, list)) or len(fig_size) != 2:
        raise TypeError(f"fig_size must be a (width, height) pair in inches, got {fig_size!r}")
    w, h = (check_real("fig_size", v, low=0.0, low_open=True) for v in fig_size)
    return w, h


def _plane(attr: Any) -> Any:
    """The (H, W) map of an (H, W) or (H, W, C) attribution: channels summed (captum)."""
    if attr.ndim == 3:
        return attr.sum(axis=2)
    return attr


def cumulative_sum_threshold(values: Any, percentile: float) -> float:
    r"""The smallest value :math:`t` of ``values`` (non-negative, a numpy array) such that
    the values up to :math:`t` hold ``percentile`` percent of their sum:
    :math:`t = v_{(i^*)}`, :math:`i^* = \min\{i : \sum_{j \le i} v_{(j)} \ge p/100 \cdot
    \sum_j v_{(j)}\}` over the sorted values :math:`v_{(1)} \le \dots \le v_{(m)}` (captum's
    ``_cumulative_sum_threshold``)."""
    ordered = values.reshape(-1).copy()
    ordered.sort()
    cumulative = ordered.cumsum()
    i = int(cumulative.searchsorted(cumulative[-1] * 0.01 * percentile, side="left"))
    return float(ordered[min(i, ordered.size - 1)])


def normalize_attr(attr: Any, sign: str = "all", outlier_perc: float = 2) -> tuple[Any, float]:
    r"""The attribution map as drawn, and the scale it was divided by.

    With :math:`a` the (H, W) map (channels already summed), :math:`a_s` its part of the
    chosen sign (``all``: :math:`a`; ``positive``: :math:`\max(a, 0)`; ``negative``:
    :math:`\min(a, 0)`; ``absolute_value``: :math:`|a|`) and :math:`t` the
    :func:`cumulative_sum_threshold` of :math:`|a_s|` at ``100 - outlier_perc`` percent:

    .. math:: \hat a = \operatorname{clip}(a_s / s, -1, 1), \qquad
              s = -t \text{ for } \texttt{negative}, \; t \text{ otherwise,}

    so the largest values, holding ``outlier_perc`` percent of the total :math:`\sum |a_s|`,
    saturate at :math:`\pm 1`, and ``negative`` maps are drawn as magnitudes in [0, 1].
    This is captum 0.9.0's ``_normalize_attr``, except that a map with nothing of the sign
    asked for (:math:`t = 0`) is drawn as zeros with :math:`s = 1` (captum fails an
    assertion). ``attr``: a host (numpy) array.
    """
    if sign == "positive":
        part = attr.clip(0, None)
    elif sign == "negative":
        part = attr.clip(None, 0)
    elif sign == "absolute_value":
        part = abs(attr)
    else:
        part = attr
    threshold = cumulative_sum_threshold(abs(part), 100.0 - outlier_perc)
    if threshold == 0.0:
        return part * 0.0, 1.0
    scale = -threshold if sign == "negative" else threshold
    return (part / scale).clip(-1, 1), scale


def _prepare(image: Any) -> tuple[Any, Any]:
    """``(grey, rgb)``: a grey image ((H, W) or (H, W, 1)) as its (H, W) values, drawn on
    their own range (as captum's colormapped display of one channel does), and None; a
    colour image ((H, W, 3) or (H, W, 4)) as None and its pixels in [0, 1]: images whose
    maximum is at most 1 are taken as [0, 1], others as [0, 255] (captum's rule; values
    beyond are clipped, not quantised to integers)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return image.reshape(image.shape[:2]), None
    if image.max() > 1.0:
        image = image / 255.0
    return None, image.clip(0.0, 1.0)


def _unit(grey: Any) -> Any:
    """Grey levels mapped onto [0, 1] by their range (a constant image: clipped)."""
    low, high = float(grey.min()), float(grey.max())
    if high == low:
        return grey.clip(0.0, 1.0)
    return (grey - low) / (high - low)


def visualize_image_attr(
    attr: Any,
    original_image: Any = None,
    method: str = "heat_map",
    sign: str = "all",
    plt_fig_axis: Any = None,
    outlier_perc: float = 2,
    cmap: Any = None,
    alpha_overlay: float = 0.5,
    show_colorbar: bool = True,
    title: str | None = None,
    fig_size: tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
) -> tuple[Any, Any]:
    r"""Draw an image attribution, normalised as captum draws it, with a colour bar.

    The attribution is summed over channels, the part of the chosen ``sign`` is kept and
    divided by a robust scale (see :func:`normalize_attr`): with :math:`t` the smallest
    :math:`|a|` such that the values up to :math:`t` hold ``100 - outlier_perc`` percent of
    :math:`\sum |a|`,

    .. math:: \hat a = \operatorname{clip}(a / t, -1, 1),

    so the top ``outlier_perc`` percent of the attribution mass saturates. For
    ``sign="all"`` the heat map is drawn on a diverging colormap centred on 0
    (``vmin = -1 = -vmax``), white where the attribution vanishes; the colour bar is
    labelled with the scale, ``attribution / t``, so values can be read back.

    Parameters
    ----------
    attr : array (H, W, C) or (H, W)
        The attribution, channels last, as an array of any backend (numpy, torch,
        array_api_strict, cupy, jax). An attribution of ``refimpl.attr`` has the shape of
        its input, (B, C, H, W): draw example ``b`` with ``attr[b, 0]`` (one channel) or
        ``xp.permute_dims(attr[b], (1, 2, 0))`` (channels last). May be None for
        ``method="original_image"``.
    original_image : array (H, W, C) or (H, W), optional
        The image. Grey ((H, W) or (H, W, 1)): drawn in grey on the range of its values.
        Colour ((H, W, 3) or (H, W, 4)): values in [0, 1], or in [0, 255] when the maximum
        is above 1 (captum's rule). Needed by every method but ``heat_map``.
    method : str
        ``"heat_map"`` (default), ``"blended_heat_map"`` (the heat map, with opacity
        ``alpha_overlay``, over the image in grey), ``"original_image"`` (the image only),
        ``"masked_image"`` (the image times :math:`\hat a`), ``"alpha_scaling"`` (the image
        with opacity :math:`\hat a`). The last two need a sign other than ``"all"``.
    sign : str
        ``"all"`` (default), ``"positive"``, ``"negative"`` or ``"absolute_value"``.
    plt_fig_axis : (Figure, Axes), optional
        Where to draw (a sequence of axes: its first); a new figure otherwise.
    outlier_perc : float
        The percentage of the attribution mass that saturates, in [0, 100] (default 2).
    cmap : str or matplotlib Colormap, optional
        The heat map's colormap. Default: ``"RdBu_r"`` for ``all``, ``"Reds"`` for
        ``positive``, ``"Blues"`` for ``negative``, ``"Greys"`` for ``absolute_value``.
    alpha_overlay : float
        The heat map's opacity in ``blended_heat_map``, in [0, 1].
    show_colorbar : bool
        A horizontal colour bar under the axes (default). Methods without a heat map get a
        hidden one, so that panels with and without stay aligned (as in captum).
    title : str, optional
        The axes' title.
    fig_size : (float, float)
        The size in inches of a new figure.
    use_pyplot : bool
        Make a new figure with pyplot and show it (``plt.show()``); False: a bare
        ``matplotlib.figure.Figure``, not shown. A figure passed in ``plt_fig_axis`` is
        never shown here.

    Returns
    -------
    (matplotlib.figure.Figure, matplotlib.axes.Axes)
        The figure and the axes drawn on. The heat map is ``axes.get_images()[-1]``; its
        ``colorbar`` attribute is the colour bar.

    Notes
    -----
    Differences from captum 0.9.0 (docs/differences.md lists them): the defaults
    ``sign="all"`` and ``show_colorbar=True`` (captum: ``"absolute_value"``, False); the
    colormaps (captum: red-white-green for ``all``, Greens / Reds / Blues); a map with
    nothing of the chosen sign is drawn as zeros (captum: AssertionError); a grey image may be
    (H, W) or (H, W, 1) in every method and is drawn in grey (captum: its default colormap,
    or a shape error); a figure passed in is not shown; arrays of any library are
    accepted.

    References
    ----------
    captum 0.9.0 documentation, ``captum.attr.visualization.visualize_image_attr``,
    https://captum.ai/api/utilities.html#visualization
    """
    method = check_choice("method", method, VISUALIZATION_METHODS)
    sign = check_choice("sign", sign, SIGNS)
    outlier_perc = check_real("outlier_perc", outlier_perc, low=0.0, high=100.0)
    alpha_overlay = check_real("alpha_overlay", alpha_overlay, low=0.0, high=1.0)
    check_bool("show_colorbar", show_colorbar)
    check_bool("use_pyplot", use_pyplot)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {title!r} ({type(title).__name__})")
    if method in ("masked_image", "alpha_scaling") and sign == "all":
        raise ValueError(
            f"method={method!r} cannot show signed values: choose sign='positive', "
            "'negative' or 'absolute_value'"
        )
    a = None if attr is None and method == "original_image" else _host("attr", attr)
    if a is not None and a.ndim not in (2, 3):
        raise ValueError(
            f"attr must have shape (H, W) or (H, W, C), got {tuple(a.shape)}; for a "
            "(B, C, H, W) attribution draw attr[b, 0] or xp.permute_dims(attr[b], (1, 2, 0))"
        )
    if a is not None and a.size == 0:
        raise ValueError(f"attr must have at least one pixel, got shape {tuple(a.shape)}")
    if a is not None and not bool(abs(a).max() < math.inf):
        raise ValueError("attr contains NaN or infinite values")
    grey = rgb = None
    if original_image is not None:
        image = _host("original_image", original_image)
        if image.size == 0:
            raise ValueError(
                f"original_image must have at least one pixel, got shape {tuple(image.shape)}"
            )
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(
                "original_image must have shape (H, W) or (H, W, C) with C in 1, 3, 4, got "
                f"{tuple(image.shape)}"
            )
        if a is not None and image.shape[:2] != a.shape[:2]:
            raise ValueError(
                f"original_image has height and width {tuple(image.shape[:2])}, attr "
                f"{tuple(a.shape[:2])}: they must match"
            )
        if not bool(abs(image).max(initial=0.0) < math.inf):
            raise ValueError("original_image contains NaN or infinite values")
        grey, rgb = _prepare(image)
    elif method != "heat_map":
        raise ValueError(f"method={method!r} needs original_image (only heat_map does not)")
    plt = pyplot()
    check_cmap(cmap, example="RdBu_r")
    if plt_fig_axis is not None:
        fig, ax = _fig_and_axis(plt_fig_axis)
    else:
        size = _fig_size(fig_size)
        if use_pyplot:
            fig, ax = plt.subplots(figsize=size)
        else:
            from matplotlib.figure import Figure

            fig = Figure(figsize=size)
            ax = fig.subplots()

    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(visible=False)
    heat = None
    vmin, vmax = (-1.0, 1.0) if sign == "all" else (0.0, 1.0)
    cmap = DEFAULT_CMAPS[sign] if cmap is None else cmap
    norm, scale = (None, 1.0) if a is None else normalize_attr(_plane(a), sign, outlier_perc)
    if method == "heat_map":
        heat = ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=vmax)
    elif method == "blended_heat_map":
        ax.imshow(grey if rgb is None else rgb[:, :, :3].mean(axis=2), cmap="gray")
        heat = ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha_overlay)
    elif method == "original_image":
        if rgb is None:
            ax.imshow(grey, cmap="gray")
        else:
            ax.imshow(rgb)
    elif method == "masked_image":
        if rgb is None:
            ax.imshow(_unit(grey) * norm, cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.imshow(rgb[:, :, :3] * norm[:, :, None])
    else:  # alpha_scaling
        colour = _unit(grey)[:, :, None].repeat(3, axis=2) if rgb is None else rgb[:, :, :3]
        host = backends.get("numpy").xp
        ax.imshow(host.concat([colour, norm[:, :, None]], axis=2))
    if show_colorbar:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        cax = make_axes_locatable(ax).append_axes("bottom", size="5%", pad=0.1)
        if heat is not None:
            bar = fig.colorbar(heat, cax=cax, orientation="horizontal")
            bar.set_label(f"attribution / {scale:.3g}", fontsize="small")
            bar.ax.tick_params(labelsize="small")
        else:
            cax.axis("off")
    if title is not None:
        ax.set_title(title)
    if use_pyplot and plt_fig_axis is None:
        plt.show()
    return fig, ax
