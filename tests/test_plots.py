"""Every plot function renders (Agg backend) and draws what it says: axes, limits, labels,
titles, colour bars, and the normalised pictures, on every backend.

- ``plot_eigenvalues``: four eigenvalues (the top 2 and the bottom 2 of eigsh) fill the
  axes, with the indices not computed as a shaded gap; every marker and error bar lies
  inside the limits; the whole spectrum (exact) is drawn at its indices.
- ``display_eigendistortions``: no empty panel; titles name the index and say which
  distortion is the most / least visible.
- ``refimpl.attr.visualize_image_attr``: captum's normalisation (compared with captum 0.9.0
  itself when installed), a diverging colormap centred on 0 with its colour bar, the other
  methods and signs, and the bad arguments.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from refimpl import attr as ra  # noqa: E402
from refimpl import models as rm  # noqa: E402
from refimpl.attr import visualize_image_attr  # noqa: E402
from refimpl.eigendistortion import (  # noqa: E402
    Eigendistortion,
    display_eigendistortions,
    plot_eigenvalues,
)
from tests.test_eigendistortion import LinearCase  # noqa: E402

N = 16  # LinearCase images are N x N: n = 256 eigenvalues


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def synthesized(backend, method: str, N: int = N, **kw) -> tuple[LinearCase, Eigendistortion]:
    case = LinearCase(backend, backend.dtype("float64"), N)
    eig = Eigendistortion(case.image, case.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unconverged and randomized-SVD notes
        eig.synthesize(method, rng=0, progress=False, **kw)
    return case, eig


def lines(ax, gid: str) -> list:
    """The lines plot_eigenvalues drew with ``gid`` ("eigenvalues", "zeros")."""
    return [line for line in ax.lines if line.get_gid() == gid]


def points(ax) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every marker drawn (the lines of the eigenvalues and of the zeros)."""
    xy = np.concatenate([line.get_xydata() for line in lines(ax, "eigenvalues")])
    return xy[:, 0], xy[:, 1]


def bar_ends(ax) -> np.ndarray:
    """(k, 2, 2) segments of the error bars: ((x, y_low), (x, y_high)) per bar."""
    segments = [s for c in ax.collections for s in c.get_segments()]
    return np.asarray(segments, dtype=float).reshape(-1, 2, 2)


def residuals(eig) -> np.ndarray:
    conv = eig.convergence
    return np.array(
        [r * conv[b]["scale"] for b in ("top", "bottom") if b in conv for r in conv[b]["residuals"]]
    )


# -- plot_eigenvalues ----------------------------------------------------------------------------
def test_plot_eigenvalues_four_pairs_fill_the_axes_and_keep_the_bars_inside(backend):
    case, eig = synthesized(backend, "eigsh", k=2)
    ax = plot_eigenvalues(eig)
    lam = backend.to_numpy(eig.eigenvalues).astype(float)
    res = residuals(eig)
    assert ax.get_xlabel() == "eigenvalue index"
    assert ax.get_ylabel().startswith("eigenvalue")
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "4 of 256 eigenvalues (eigsh)"
    # the four points, side by side (the indices 2..253 not computed are a gap)
    x, y = points(ax)
    assert len(x) == 4 and np.all(np.diff(x) > 0)
    np.testing.assert_allclose(y, lam)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "254", "255"]
    np.testing.assert_allclose(ax.get_xticks(), x)
    lo, hi = ax.get_xlim()
    assert lo < x.min() and x.max() < hi
    assert hi - lo < 10 * (x.max() - x.min())  # not four points at the edges of 0..255
    gaps = [t.get_text() for t in ax.texts]
    assert gaps == ["2…253\nnot computed"]
    assert len(ax.patches) == 1  # the shaded gap
    # every marker and every bar inside the y limits
    ylo, yhi = ax.get_ylim()
    assert ylo < y.min() and y.max() < yhi
    ends = bar_ends(ax)
    assert ends.shape == (4, 2, 2)
    inside = (ends[:, :, 1] >= ylo * (1 - 1e-12)) & (ends[:, :, 1] <= yhi)  # rounding
    assert inside.all()
    np.testing.assert_allclose(ends[:, 1, 1], lam + res)  # upper ends: lambda + r
    reaches_zero = lam - res <= 0
    assert reaches_zero[2:].all()  # the bottom pairs are 0 to within their residual
    np.testing.assert_allclose(ends[reaches_zero, 0, 1], ylo)  # drawn to the bottom edge
    np.testing.assert_allclose(ends[~reaches_zero, 0, 1], (lam - res)[~reaches_zero])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "eigenvalues (eigsh)" and labels[1].startswith("residual")
    ax.figure.canvas.draw()  # renders


def test_plot_eigenvalues_whole_spectrum_at_its_indices_with_zeros_at_the_bottom(backend):
    case, eig = synthesized(backend, "exact", N=8)  # n = 64, rank 48: 16 zeros
    lam = backend.to_numpy(eig.eigenvalues).astype(float)
    ax = plot_eigenvalues(eig)
    x, y = points(ax)
    positive = lam > 0
    (line,) = (one.get_xydata() for one in lines(ax, "eigenvalues"))
    np.testing.assert_array_equal(line[:, 0], np.arange(64))  # x is the index
    np.testing.assert_allclose(line[positive, 1], lam[positive])
    lo, hi = ax.get_xlim()
    assert lo < 0 and 63 < hi and (hi - 63) < 0.1 * 64
    assert 63 in ax.get_xticks() and 0 in ax.get_xticks()
    ylo, yhi = ax.get_ylim()
    assert ylo < y.min() and y.max() < yhi
    if (~positive).any():  # zeros: triangles two decades below the smallest positive value
        (zeros,) = lines(ax, "zeros")
        assert zeros.get_marker() == "v"
        np.testing.assert_allclose(zeros.get_ydata(), lam[positive].min() / 100)
    assert not ax.collections  # exact reports no residuals: no error bars
    assert ax.get_title() == "64 of 64 eigenvalues (exact)"


def test_plot_eigenvalues_linear_scale_and_a_tail_gap(backend):
    case, eig = synthesized(backend, "randomized_svd", k=3)
    own = plt.subplots()[1]
    own.set_title("mine")
    ax = plot_eigenvalues(eig, ax=own, logy=False)
    assert ax is own and ax.get_title() == "mine"  # a title given is kept
    assert ax.get_yscale() == "linear"
    lam = backend.to_numpy(eig.eigenvalues).astype(float)
    res = residuals(eig)
    ylo, yhi = ax.get_ylim()
    assert ylo <= min(0.0, (lam - res).min()) and (lam + res).max() <= yhi
    ends = bar_ends(ax)
    np.testing.assert_allclose(ends[:, 0, 1], lam - res)
    np.testing.assert_allclose(ends[:, 1, 1], lam + res)
    assert [t.get_text() for t in ax.texts] == ["3…255\nnot computed"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    x, _ = points(ax)
    lo, hi = ax.get_xlim()
    assert lo < x.min() and x.max() < hi


# -- display_eigendistortions -----------------------------------------------------------------
def test_display_eigendistortions_has_no_empty_panel_and_names_the_visibility(backend):
    case, eig = synthesized(backend, "eigsh", k=2)
    fig = display_eigendistortions(eig, [0, 1, -2, -1], distortion_scale=3.0)
    axes = fig.axes
    assert len(axes) == 1 + 2 * 4
    for ax in axes:  # every panel shows one picture
        assert ax.get_visible() and ax.axison and len(ax.get_images()) == 1
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "Original image"
    lam = backend.to_numpy(eig.eigenvalues).astype(float)
    head = ["index 0 (most visible)", "index 1 (2nd most visible)"]
    head += ["index 254 (2nd least visible)", "index 255 (least visible)"]
    for title, first, value in zip(titles[1:5], head, lam):
        assert title == f"{first}\nλ = {value:.3g}"
    assert titles[5:] == [f"image + 3 × distortion {i}" for i in (0, 1, 254, 255)]
    # the image spans both rows of the first column; distortions above their sums
    spec = axes[0].get_subplotspec()
    assert spec.rowspan == range(0, 2) and spec.colspan == range(0, 1)
    assert [a.get_subplotspec().rowspan for a in axes[1:]] == [range(0, 1)] * 4 + [range(1, 2)] * 4
    shown = np.asarray(axes[8].get_images()[0].get_array())
    vec = backend.to_numpy(eig.eigendistortions[3, 0, ...]).astype(float)
    np.testing.assert_array_equal(shown, case.image_np[0, 0] + 3.0 * vec)
    fig.canvas.draw()


def test_display_eigendistortions_middle_indices_have_no_visibility_word(backend):
    case, eig = synthesized(backend, "exact", N=8)
    fig = display_eigendistortions(eig, [32])
    assert fig.axes[1].get_title().split("\n")[0] == "index 32"
    assert len(fig.axes) == 3
    fig = display_eigendistortions(eig, 9)
    assert fig.axes[1].get_title().startswith("index 9 (10th most visible)")
    fig = display_eigendistortions(eig, [-10, -11])
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes[1:3]]
    assert titles == ["index 54 (10th least visible)", "index 53"]


def test_eigendistortion_plots_take_the_torch_front_end_and_plenoptics_objects():
    """refimpl's figures take refimpl.torch's and plenoptic's objects (plenoptic's has no
    ``convergence`` or ``method``, a 0-d eigenvalue for randomized_svd k=1, ``_indexer``);
    plenoptic's figures take the front end's objects."""
    torch = pytest.importorskip("torch")
    from refimpl.torch import Eigendistortion as TorchEigendistortion

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Softplus()).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, 1, 8, 8)
    ours = TorchEigendistortion(x, model)
    ours.synthesize("eigsh", k=2, rng=0, progress=False)
    fig = display_eigendistortions(ours, [0, -1])
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[1:3]] == [
        "index 0 (most visible)",
        "index 63 (least visible)",
    ]
    ax = plot_eigenvalues(ours)
    assert ax.get_title() == "4 of 64 eigenvalues (eigsh)"
    with pytest.raises(TypeError, match="eig must be an Eigendistortion"):
        plot_eigenvalues(x)
    po = pytest.importorskip("plenoptic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = po.Eigendistortion(x, model)
        theirs.synthesize("randomized_svd", k=1)  # 0-d eigenvalues in plenoptic
        their_fig = display_eigendistortions(theirs, 0)
        assert their_fig.axes[1].get_title().startswith("index 0 (most visible)")
        assert plot_eigenvalues(theirs).get_title() == "1 of 64 eigenvalues"
        with pytest.raises(ValueError, match="not among the synthesized"):
            display_eigendistortions(theirs, -1)
        # plenoptic's figures on the front end's object (registered as a virtual subclass
        # of plenoptic's, on first reading its image once plenoptic is imported)
        fig = po.plot.eigendistortion_imshow_all(ours, [0, -1])
        assert isinstance(ours, po.Eigendistortion)
        titles = [a.get_title().split("\n")[0] for a in fig.axes[1:3]]
        assert titles == ["Eigendistortion[0]", "Eigendistortion[-1]"]
        po.plot.synthesis_imshow(ours, batch_idx=-1)


# -- visualize_image_attr ---------------------------------------------------------------------
def saliency_map(backend) -> tuple[np.ndarray, object]:
    """A (H, W) saliency map of the backend from refimpl.attr, and the (H, W) image."""
    rng = np.random.default_rng(1)
    side = 12
    image = rng.uniform(0.1, 0.9, (1, 1, side, side))
    W = rng.standard_normal((3, side * side))
    model = rm.Sequential(
        rm.Conv2d(
            rm.center_surround(5, 1.0, 2.0, backend=backend.name, device=backend.device),
            pad_mode="reflect",
        ),
        rm.Pointwise("relu"),
        rm.Flatten(3),
        rm.Linear(backend.asarray(W)),
    )
    x = backend.asarray(image)
    a = ra.Saliency(model, abs=False).attribute(x, target=1)
    return image[0, 0], a[0, 0, ...]


def test_visualize_image_attr_heat_map_is_centred_on_zero_with_a_colour_bar(backend):
    image, a = saliency_map(backend)
    host = backend.to_numpy(a).astype(float)
    assert host.min() < 0 < host.max()  # a signed map
    fig, ax = visualize_image_attr(a, title="saliency", use_pyplot=False)
    assert ax.figure is fig and ax.get_title() == "saliency"
    heat = ax.get_images()[-1]
    drawn = np.asarray(heat.get_array())
    assert drawn.shape == host.shape and drawn.min() >= -1 and drawn.max() <= 1
    assert drawn.min() == -1 or drawn.max() == 1  # the top 2% of the mass saturates
    vmin, vmax = heat.get_clim()
    assert (vmin, vmax) == (-1.0, 1.0) and vmin == -vmax
    assert heat.get_cmap().name == "RdBu_r"
    bar = heat.colorbar
    assert bar is not None and bar.orientation == "horizontal"
    assert bar.vmin == -bar.vmax == -1.0
    _, scale = ra.plot.normalize_attr(host, "all", 2)
    assert bar.ax.get_xlabel() == f"attribution / {scale:.3g}"
    np.testing.assert_allclose(drawn, np.clip(host / scale, -1, 1))
    assert len(fig.axes) == 2 and not list(ax.get_xticks()) and not list(ax.get_yticks())
    # channels last: (H, W, C) is summed over C
    chw = backend.xp.stack([a, 2 * a, -a])
    hwc = backend.xp.permute_dims(chw, (1, 2, 0))
    _, ax3 = visualize_image_attr(hwc, use_pyplot=False, show_colorbar=False)
    np.testing.assert_allclose(np.asarray(ax3.get_images()[-1].get_array()), drawn)
    assert len(ax3.figure.axes) == 1
    fig.canvas.draw()


@pytest.mark.parametrize("sign", ["all", "positive", "negative", "absolute_value"])
def test_visualize_image_attr_normalises_as_captum(backend, sign):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((9, 7, 3)) * np.linspace(0.1, 3.0, 7)[None, :, None]
    image = rng.uniform(size=(9, 7, 3))
    _, ax = visualize_image_attr(
        backend.asarray(a), backend.asarray(image), "heat_map", sign, use_pyplot=False
    )
    heat = ax.get_images()[-1]
    ours = np.asarray(heat.get_array())
    assert heat.get_clim() == ((-1.0, 1.0) if sign == "all" else (0.0, 1.0))
    assert ours.min() >= (-1 if sign == "all" else 0) and ours.max() <= 1
    captum_vis = pytest.importorskip("captum.attr._utils.visualization")
    theirs = captum_vis._normalize_attr(a.sum(axis=2), sign, 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    _, their_ax = captum_vis.visualize_image_attr(a, image, "heat_map", sign, use_pyplot=False)
    np.testing.assert_allclose(ours, np.asarray(their_ax.get_images()[-1].get_array()))


@pytest.mark.parametrize(
    "method, sign",
    [
        ("blended_heat_map", "all"),
        ("original_image", "all"),
        ("masked_image", "positive"),
        ("alpha_scaling", "absolute_value"),
    ],
)
def test_visualize_image_attr_methods_with_the_image(backend, method, sign):
    image, a = saliency_map(backend)
    norm, _ = ra.plot.normalize_attr(backend.to_numpy(a).astype(float), sign, 2)
    rgb = np.stack([image, 1 - image, 0.5 * np.ones_like(image)], axis=2)
    for picture in (backend.asarray(image), backend.asarray(rgb)):  # grey, colour
        fig, ax = visualize_image_attr(a, picture, method, sign, use_pyplot=False)
        images = ax.get_images()
        assert len(fig.axes) == 2  # the axes and its colour bar (hidden without a heat map)
        cax = fig.axes[1]
        if method == "blended_heat_map":
            assert len(images) == 2 and images[-1].get_alpha() == 0.5
            np.testing.assert_allclose(np.asarray(images[-1].get_array()), norm)
            assert images[-1].colorbar is not None and cax.axison
        else:
            assert len(images) == 1 and not cax.axison
        drawn = np.asarray(images[0].get_array())
        grey = picture.ndim == 2
        if method == "original_image":
            expected = image if grey else rgb
            np.testing.assert_allclose(drawn, expected)
        elif method == "masked_image":
            unit = (image - image.min()) / (image.max() - image.min()) if grey else rgb
            expected = unit * norm if grey else rgb * norm[:, :, None]
            np.testing.assert_allclose(drawn, expected)
        elif method == "alpha_scaling":
            assert drawn.shape == (*image.shape, 4)
            np.testing.assert_allclose(drawn[:, :, 3], norm)
        fig.canvas.draw()
    captum_vis = pytest.importorskip("captum.attr._utils.visualization")
    host_a = backend.to_numpy(a).astype(float)[:, :, None]
    _, their_ax = captum_vis.visualize_image_attr(host_a, rgb, method, sign, use_pyplot=False)
    _, our_ax = visualize_image_attr(a, backend.asarray(rgb), method, sign, use_pyplot=False)
    theirs = [np.asarray(im.get_array(), dtype=float) for im in their_ax.get_images()]
    ours = [np.asarray(im.get_array(), dtype=float) for im in our_ax.get_images()]
    assert [t.shape for t in theirs] == [o.shape for o in ours]
    if method in ("original_image", "masked_image", "alpha_scaling"):  # 0..255 integers
        np.testing.assert_allclose(ours[0] * 255, theirs[0], atol=2.0)


def test_visualize_image_attr_on_given_axes_and_pyplot(backend):
    image, a = saliency_map(backend)
    fig, axes = plt.subplots(1, 2)
    before = plt.get_fignums()
    out = visualize_image_attr(a, image, "heat_map", plt_fig_axis=(fig, axes))
    assert out == (fig, axes[0])  # a sequence of axes: its first
    assert plt.get_fignums() == before
    f2, _ = visualize_image_attr(a)  # use_pyplot=True: a pyplot figure (shown: Agg, no-op)
    assert f2.number in plt.get_fignums()
    f3, _ = visualize_image_attr(a, use_pyplot=False, fig_size=(3, 2))
    assert all(plt.figure(n) is not f3 for n in plt.get_fignums())
    assert tuple(f3.get_size_inches()) == (3, 2)


def test_visualize_image_attr_zero_map_and_bad_arguments(backend):
    image, a = saliency_map(backend)
    zero = a * 0.0
    _, ax = visualize_image_attr(zero, use_pyplot=False)  # captum: AssertionError
    assert not np.asarray(ax.get_images()[-1].get_array()).any()
    _, ax = visualize_image_attr(-backend.xp.abs(a), sign="positive", use_pyplot=False)
    assert not np.asarray(ax.get_images()[-1].get_array()).any()
    kw = dict(use_pyplot=False)
    with pytest.raises(ValueError, match="method must be one of"):
        visualize_image_attr(a, method="saliency", **kw)
    with pytest.raises(ValueError, match="sign must be one of"):
        visualize_image_attr(a, sign="both", **kw)
    with pytest.raises(ValueError, match="needs original_image"):
        visualize_image_attr(a, method="blended_heat_map", **kw)
    with pytest.raises(ValueError, match="cannot show signed values"):
        visualize_image_attr(a, image, method="masked_image", sign="all", **kw)
    with pytest.raises(ValueError, match=r"attr must have shape \(H, W\) or \(H, W, C\)"):
        visualize_image_attr(backend.xp.reshape(a, (1, 1, *a.shape)), **kw)
    with pytest.raises(ValueError, match="must match"):
        visualize_image_attr(a, image[:-1], method="blended_heat_map", **kw)
    with pytest.raises(ValueError, match="outlier_perc must be a finite number in"):
        visualize_image_attr(a, outlier_perc=101, **kw)
    with pytest.raises(ValueError, match="alpha_overlay must be a finite number in"):
        visualize_image_attr(a, alpha_overlay=-0.1, **kw)
    with pytest.raises(ValueError, match="attr contains NaN"):
        visualize_image_attr(a * float("nan"), **kw)
    with pytest.raises(TypeError, match="attr must be an array"):
        visualize_image_attr([[0.0, 1.0]], **kw)
    with pytest.raises(TypeError, match="show_colorbar must be True or False"):
        visualize_image_attr(a, show_colorbar=1, **kw)
    with pytest.raises(TypeError, match="plt_fig_axis must be"):
        visualize_image_attr(a, plt_fig_axis=plt.subplots()[1], **kw)
    with pytest.raises(ValueError, match="cmap must name a matplotlib colormap"):
        visualize_image_attr(a, cmap="no-such-map", **kw)
    _, ax = visualize_image_attr(None, image, "original_image", **kw)  # no attribution needed
    assert len(ax.get_images()) == 1


def test_importing_refimpl_attr_does_not_import_matplotlib():
    code = (
        "import sys, refimpl.attr as a; a.visualize_image_attr; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
