"""What the two plotting modules (``refimpl.attr.plot``, ``refimpl.eigendistortion.plot``)
share: pyplot imported on first use (matplotlib is the ``plot`` extra) and the ``cmap``
argument's check."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'refimpl[plot]' (or matplotlib)"
        ) from None
    return plt


def check_cmap(cmap: Any, *, example: str) -> None:
    """None (matplotlib's default), the name of a registered colormap, or a Colormap;
    ``example`` names a fitting one in the error message."""
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
        raise ValueError(
            f"cmap must name a matplotlib colormap (such as {example!r}), got {cmap!r}"
        )
