r"""2-D cross-correlation with "same" padding, and its adjoint, without a dense matrix.

Forward (what ``torch.nn.functional.conv2d`` computes after ``F.pad``, and what plenoptic's
models do): pad the image :math:`x` to :math:`P x` by ``kh - 1`` rows and ``kw - 1``
columns (the low side gets ``(kh - 1) // 2``), then correlate with the weights
:math:`w \in \mathbb{R}^{C_{out} \times C_{in} \times k_h \times k_w}`:

.. math::

    y_{o,i,j} = b_o + \sum_{c,a,b} w_{o,c,a,b}\, (P x)_{c,\, s i + a,\, s j + b}

(stride :math:`s`). The map is affine, so :math:`J v` is the same correlation of :math:`v`
without the bias, and the adjoint is

.. math::

    J^\top u = P^\top \operatorname{conv}_{full}(u, w),\qquad
    (\operatorname{conv}_{full}(u, w))_{c,p,q} = \sum_{o,a,b} w_{o,c,a,b}\, u_{o,\,p-a,\,q-b}

i.e. a "full" convolution (correlation with the flipped kernel), then :math:`P^\top`, which
adds every padded entry back onto the pixel it was copied from (wrap for ``circular``,
mirror for ``reflect``, edge for ``replicate``, nothing for ``constant``). A stride keeps
every :math:`s`-th output; its adjoint puts zeros in between.

Two ways to correlate, both written against the array API standard: ``"direct"`` sums
:math:`k_h k_w` shifted slices (fast for small kernels), ``"fft"`` multiplies spectra
(:math:`O(HW \log HW)` whatever the kernel: the padded image's circular correlation equals
the valid one, because no index wraps around; the transform length is rounded up to a
product of 2, 3 and 5). Images and kernels with entries beyond a quarter of the dtype's
exponent range are scaled by a power of two around the transforms, so that the FFT gives
the direct method's finite result up to the dtype's largest value (never NaN).
"""

from __future__ import annotations

import math
from typing import Any

from backends import fft, namespace_and_device
from refimpl.models.base import Linearization, Model
from refimpl.validation import check_array, check_choice, check_finite, check_int, check_like

__all__ = ["PAD_MODES", "Conv2d", "pad2d", "pad2d_adjoint"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")
_ALIASES = {"zeros": "constant"}
#: the correlation methods (``auto``: direct for small kernels, else FFT)
METHODS = ("auto", "direct", "fft")
#: kernels with at most this many taps use the direct method under method="auto"
DIRECT_MAX_TAPS = 25


# -- padding and its adjoint, one axis at a time --------------------------------------------
def _sl(ndim: int, axis: int, start: int, stop: int) -> tuple:
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


def _zeros_along(xp: Any, like: Any, axis: int, n: int) -> Any:
    shape = list(like.shape)
    shape[axis] = n
    return xp.zeros(tuple(shape), dtype=like.dtype, device=like.device)


def _pad1d(xp: Any, x: Any, lo: int, hi: int, mode: str, axis: int) -> Any:
    n, nd = x.shape[axis], x.ndim
    if lo == hi == 0:
        return x
    if mode == "constant":
        left, right = _zeros_along(xp, x, axis, lo), _zeros_along(xp, x, axis, hi)
    elif mode == "reflect":  # x[lo], ..., x[1] | x | x[n-2], ..., x[n-1-hi]
        left = xp.flip(x[_sl(nd, axis, 1, lo + 1)], axis=axis)
        right = xp.flip(x[_sl(nd, axis, n - 1 - hi, n - 1)], axis=axis)
    elif mode == "replicate":
        lshape, rshape = list(x.shape), list(x.shape)
        lshape[axis], rshape[axis] = lo, hi
        left = xp.broadcast_to(x[_sl(nd, axis, 0, 1)], tuple(lshape))
        right = xp.broadcast_to(x[_sl(nd, axis, n - 1, n)], tuple(rshape))
    else:  # circular: x[n-lo:] | x | x[:hi]
        left, right = x[_sl(nd, axis, n - lo, n)], x[_sl(nd, axis, 0, hi)]
    return xp.concat([left, x, right], axis=axis)


def _pad1d_adjoint(xp: Any, g: Any, lo: int, hi: int, mode: str, axis: int, n: int) -> Any:
    nd = g.ndim
    core = g[_sl(nd, axis, lo, lo + n)]
    if mode == "constant" or lo == hi == 0:
        return core
    gl, gr = g[_sl(nd, axis, 0, lo)], g[_sl(nd, axis, lo + n, lo + n + hi)]
    z = lambda k: _zeros_along(xp, g, axis, k)  # noqa: E731
    if mode == "reflect":
        back_l = xp.concat([z(1), xp.flip(gl, axis=axis), z(n - 1 - lo)], axis=axis)
        back_r = xp.concat([z(n - 1 - hi), xp.flip(gr, axis=axis), z(1)], axis=axis)
    elif mode == "replicate":
        back_l = xp.concat([xp.sum(gl, axis=axis, keepdims=True), z(n - 1)], axis=axis)
        back_r = xp.concat([z(n - 1), xp.sum(gr, axis=axis, keepdims=True)], axis=axis)
    else:
        back_l = xp.concat([z(n - lo), gl], axis=axis)
        back_r = xp.concat([gr, z(n - hi)], axis=axis)
    return core + back_l + back_r


def same_pads(kh: int, kw: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): ``k - 1`` in all, the low side getting ``(k - 1) // 2``."""
    return (kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2


def pad2d(x: Any, pads: tuple[int, int, int, int], mode: str) -> Any:
    """Pad the last two axes of ``x`` by ``(top, bottom, left, right)`` in ``mode``."""
    xp, _ = namespace_and_device(x)
    top, bottom, left, right = pads
    return _pad1d(xp, _pad1d(xp, x, top, bottom, mode, -2), left, right, mode, -1)


def pad2d_adjoint(g: Any, pads: tuple[int, int, int, int], mode: str, hw: tuple[int, int]) -> Any:
    r""":math:`P^\top g`: fold a padded gradient back onto the ``hw``-sized image."""
    xp, _ = namespace_and_device(g)
    top, bottom, left, right = pads
    g = _pad1d_adjoint(xp, g, left, right, mode, -1, hw[1])
    return _pad1d_adjoint(xp, g, top, bottom, mode, -2, hw[0])


# -- valid correlation, two ways -------------------------------------------------------------
def _channel_mix(xp: Any, w: Any, x: Any) -> Any:
    """``sum_c w[o, c] * x[..., c, :, :]`` for ``w`` (O, C, h, w') and ``x`` (..., C, h, w')."""
    if w.shape[1] == 1:  # one input channel: broadcast it against the O filters
        return w[:, 0, ...] * x
    if w.shape[0] == 1:
        return xp.sum(w[0, ...] * x, axis=-3, keepdims=True)
    return xp.sum(w * xp.expand_dims(x, axis=-4), axis=-3)


def _correlate_direct(xp: Any, xpad: Any, w: Any) -> Any:
    """Sum over the kernel taps (a, b) of the shifted slice mixed by ``w[:, :, a, b]``: a
    scalar product for one channel in and out, else one matrix product (O, C) @ (C, N)
    per tap, with the channel axis moved first once so each product is a single GEMM."""
    c_out, c_in, kh, kw = w.shape
    ho, wo = xpad.shape[-2] - kh + 1, xpad.shape[-1] - kw + 1
    lead = tuple(xpad.shape[:-3])
    mixed = not (c_in == c_out == 1)
    src = xp.moveaxis(xpad, -3, 0) if mixed else xpad  # (C, ..., Hp, Wp)
    columns = math.prod(lead) * ho * wo  # explicit: a reshape to (C, -1) fails on 0 entries
    out = None
    for a in range(kh):
        for b in range(kw):
            patch = src[..., a : a + ho, b : b + wo]
            if mixed:
                term = xp.matmul(w[:, :, a, b], xp.reshape(patch, (c_in, columns)))
            else:
                term = w[0, :, a, b] * patch
            out = term if out is None else out + term
    if not mixed:
        return out
    return xp.moveaxis(xp.reshape(out, (c_out, *lead, ho, wo)), 0, -3)


def _in_range(xp: Any, a: Any) -> tuple[Any, Any]:
    """``(a * 2**-e, 2**e)`` when ``max|a| > 2**e``, else ``(a, 1)`` (``a`` itself, bit for
    bit), with ``e`` a quarter of the largest exponent of ``a``'s dtype (32 for float32, 256
    for float64); ``(a, None)`` for an empty ``a``. No host synchronisation.

    The FFT sums every pixel into every frequency: the spectrum of an image with entries near
    the dtype's largest value overflows, and the inverse transform then turns *every* output
    pixel into NaN, where the direct sum is finite. Scaled by a power of two (exact), an image
    and a kernel each stay below ``2**e``, so their spectra, their product and its inverse
    transform stay below ``2**(2e)`` times (pixels x taps x transform length), finite for any
    practical size (``2**64`` to spare in float32); the result, scaled back, overflows only
    where the correlation itself does.
    """
    if not math.prod(a.shape):
        return a, None
    e = math.frexp(float(xp.finfo(a.dtype).max))[1] // 4
    big = xp.max(xp.abs(a)) > 2.0**e
    one = xp.ones((), dtype=a.dtype, device=a.device)
    down = xp.where(big, xp.full((), 2.0**-e, dtype=a.dtype, device=a.device), one)
    up = xp.where(big, xp.full((), 2.0**e, dtype=a.dtype, device=a.device), one)
    return a * down, up


def _scaled_back(y: Any, *ups: Any) -> Any:
    """``y`` times the factors ``_in_range`` returned (one at a time: each fits the dtype)."""
    for up in ups:
        if up is not None:
            y = y * up
    return y


class _Spectra:
    """Kernel spectra for the FFT method, one per (dtype, padded size), computed on first use,
    each with the factor that undoes its scaling (:func:`_in_range`)."""

    def __init__(self) -> None:
        self._cache: dict[tuple, tuple[Any, Any]] = {}

    def get(self, xp: Any, w: Any, size: tuple[int, int]) -> tuple[Any, Any]:
        key = (str(w.dtype), size)
        if key not in self._cache:
            w, up = _in_range(xp, w)
            self._cache[key] = (fft.rfftn(w, s=size, axes=(-2, -1)), up)
        return self._cache[key]


def fft_size(n: int) -> int:
    """The smallest ``L >= max(n, 1)`` whose prime factors are 2, 3 and 5 (fast FFT lengths;
    1, the empty product, for ``n <= 1``).

    Zero-extending the padded image to ``L`` keeps the correlation exact: the indices used,
    at most ``n - 1``, still never wrap around."""
    size = max(n, 1)
    while True:
        m = size
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return size
        size += 1


def _correlate_fft(xp: Any, xpad: Any, w: Any, spectra: _Spectra) -> Any:
    kh, kw = w.shape[-2:]
    hp, wp = xpad.shape[-2], xpad.shape[-1]
    size = (fft_size(hp), fft_size(wp))
    wf, w_up = spectra.get(xp, w, size)
    xpad, x_up = _in_range(xp, xpad)
    xf = fft.rfftn(xpad, s=size, axes=(-2, -1))
    y = fft.irfftn(_channel_mix(xp, xp.conj(wf), xf), s=size, axes=(-2, -1))
    return _scaled_back(y[..., : hp - kh + 1, : wp - kw + 1], x_up, w_up)


def _convolve_full_fft(xp: Any, g: Any, w: Any, spectra: _Spectra, padded: tuple[int, int]) -> Any:
    """The adjoint of ``_correlate_fft``: ``g`` (..., O, ho, wo) -> (..., C, *padded)."""
    size = (fft_size(padded[0]), fft_size(padded[1]))
    wf, w_up = spectra.get(xp, w, size)
    g, g_up = _in_range(xp, g)
    gf = fft.rfftn(g, s=size, axes=(-2, -1))
    mixed = _channel_mix(xp, xp.permute_dims(wf, (1, 0, 2, 3)), gf)
    full = fft.irfftn(mixed, s=size, axes=(-2, -1))[..., : padded[0], : padded[1]]
    return _scaled_back(full, g_up, w_up)


def _convolve_full_direct(xp: Any, g: Any, w: Any) -> Any:
    """The adjoint of ``_correlate_direct``: zero-pad g, correlate with the flipped kernel."""
    kh, kw = w.shape[-2:]
    gpad = pad2d(g, (kh - 1, kh - 1, kw - 1, kw - 1), "constant")
    w_flipped = xp.permute_dims(xp.flip(w, axis=(-2, -1)), (1, 0, 2, 3))
    return _correlate_direct(xp, gpad, w_flipped)


def _subsample(y: Any, stride: int) -> Any:
    return y if stride == 1 else y[..., ::stride, ::stride]


def _upsample_zeros(xp: Any, g: Any, stride: int, hw: tuple[int, int]) -> Any:
    """The adjoint of ``y[..., ::s, ::s]`` on an ``hw`` grid: put zeros between the entries."""
    if stride == 1:
        return g
    zeros = xp.zeros((*g.shape, stride - 1), dtype=g.dtype, device=g.device)
    g = xp.concat([xp.expand_dims(g, axis=-1), zeros], axis=-1)  # (..., h, w, s)
    g = xp.reshape(g, (*g.shape[:-2], g.shape[-2] * stride))[..., : hw[1]]
    g = xp.permute_dims(g, (*range(g.ndim - 2), g.ndim - 1, g.ndim - 2))
    zeros = xp.zeros((*g.shape, stride - 1), dtype=g.dtype, device=g.device)
    g = xp.concat([xp.expand_dims(g, axis=-1), zeros], axis=-1)
    g = xp.reshape(g, (*g.shape[:-2], g.shape[-2] * stride))[..., : hw[0]]
    return xp.permute_dims(g, (*range(g.ndim - 2), g.ndim - 1, g.ndim - 2))


# -- the model ---------------------------------------------------------------------------------
class Conv2d(Model):
    r"""2-D cross-correlation with "same" padding: ``(..., C_in, H, W) -> (..., C_out, H', W')``.

    .. math::

        y = b + w \star P x, \qquad J v = w \star P v, \qquad
        J^\top u = P^\top (w * u)_{full}

    Parameters
    ----------
    weight : array, shape (C_out, C_in, kh, kw) or (kh, kw)
        The kernel (a 2-d kernel means one input and one output channel). Its namespace and
        device are the model's; it is cast to the input's dtype on use.
    bias : array of shape (C_out,) or None
    pad_mode : "reflect" (default, as plenoptic), "constant" (zeros), "replicate", "circular"
    stride : int >= 1 (any integral number, numpy integers included)
        Keep every ``stride``-th output row and column (H' = ceil(H / stride)).
    method : "auto", "direct" or "fft"
        ``auto``: direct for kernels of at most 25 taps, else FFT.

    Notes
    -----
    Inputs: ``x`` must be finite (an inf or NaN pixel would reach every output pixel through
    the FFT but only its neighbours through the direct sum, so both methods refuse it with
    ValueError) and have ``H, W >= 1`` (same padding has nothing to pad from: ValueError, as
    in torch). Leading (batch) axes may have size 0: the result is then the empty array of
    the output's shape, from both methods and for both products.
    """

    def __init__(
        self,
        weight: Any,
        bias: Any = None,
        *,
        pad_mode: str = "reflect",
        stride: int = 1,
        method: str = "auto",
    ) -> None:
        xp, device = check_array(weight, name="weight")
        if weight.ndim == 2:
            weight = xp.reshape(weight, (1, 1, *weight.shape))
        if weight.ndim != 4 or 0 in weight.shape:
            raise ValueError(
                "weight must have shape (C_out, C_in, kh, kw) or (kh, kw) with non-zero sizes, "
                f"got {tuple(weight.shape)}"
            )
        check_finite(weight, name="weight")
        if bias is not None:
            check_like(bias, weight, name="bias", ref_name="weight")
            if tuple(bias.shape) != (weight.shape[0],):
                raise ValueError(
                    f"bias must have shape ({weight.shape[0]},) (C_out), got {tuple(bias.shape)}"
                )
            check_finite(bias, name="bias")
        pad_mode = check_choice("pad_mode", pad_mode, (*PAD_MODES, *_ALIASES))
        mode = _ALIASES.get(pad_mode, pad_mode)
        stride = check_int("stride", stride, low=1)
        method = check_choice("method", method, METHODS)
        self.xp, self.device = xp, device
        self.weight, self.bias = weight, bias
        self.pad_mode, self.stride = mode, stride
        kh, kw = weight.shape[-2:]
        self.method = (
            method if method != "auto" else ("direct" if kh * kw <= DIRECT_MAX_TAPS else "fft")
        )
        self.pads = same_pads(kh, kw)
        self._cast: dict[str, tuple[Any, Any]] = {}
        self._spectra = _Spectra()

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def __repr__(self) -> str:
        c_out, c_in, kh, kw = self.weight.shape
        return (
            f"Conv2d({c_in} -> {c_out}, kernel {kh}x{kw}, pad_mode={self.pad_mode!r}, "
            f"stride={self.stride}, method={self.method!r})"
        )

    # -- checks and weights in the input's dtype -------------------------------------------
    def _check_input(self, x: Any) -> None:
        check_array(x, name="x")
        same_weights_place(x, self.weight, what="Conv2d")
        if x.ndim < 3 or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"x must have shape (..., {self.in_channels}, H, W) (C_in = {self.in_channels}),"
                f" got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h == 0 or w == 0:  # same padding has no pixel to pad from (torch refuses them too)
            raise ValueError(f"x must have H >= 1 and W >= 1, got shape {tuple(x.shape)}")
        top, bottom, left, right = self.pads
        # reflect mirrors without the edge pixel, circular wraps once: the pad must fit
        room = {"reflect": (h - 1, w - 1), "circular": (h, w)}.get(self.pad_mode)
        if room is not None and (max(top, bottom) > room[0] or max(left, right) > room[1]):
            raise ValueError(
                f"x of spatial size {h}x{w} is too small for a {self.weight.shape[-2]}x"
                f"{self.weight.shape[-1]} kernel with pad_mode={self.pad_mode!r}"
            )
        # an inf or NaN pixel reaches every output pixel through the FFT, only its
        # neighbours through the direct sum: refused, so that both methods agree
        check_finite(x, name="x")

    def _weights(self, dtype: Any) -> tuple[Any, Any]:
        key = str(dtype)
        if key not in self._cast:
            xp = self.xp
            w = self.weight if self.weight.dtype == dtype else xp.astype(self.weight, dtype)
            b = self.bias
            if b is not None:
                b = xp.reshape(b if b.dtype == dtype else xp.astype(b, dtype), (-1, 1, 1))
            self._cast[key] = (w, b)
        return self._cast[key]

    # -- the linear part and its adjoint ---------------------------------------------------
    def apply_linear(self, v: Any) -> Any:
        r""":math:`w \star P v` (no bias): the JVP, for any leading batch axes."""
        xp, v_dtype = self.xp, v.dtype
        v, w = self._working(v)
        vpad = pad2d(v, self.pads, self.pad_mode)
        if self.method == "fft":
            y = _correlate_fft(xp, vpad, w, self._spectra)
        else:
            y = _correlate_direct(xp, vpad, w)
        return _as(xp, _subsample(y, self.stride), v_dtype)

    def apply_adjoint(self, u: Any, hw: tuple[int, int]) -> Any:
        r""":math:`P^\top (w * u)_{full}` onto an image of spatial size ``hw``: the VJP."""
        xp, u_dtype = self.xp, u.dtype
        u, w = self._working(u)
        top, bottom, left, right = self.pads
        padded = (hw[0] + top + bottom, hw[1] + left + right)
        kh, kw = w.shape[-2:]
        u = _upsample_zeros(xp, u, self.stride, (padded[0] - kh + 1, padded[1] - kw + 1))
        if self.method == "fft":
            g = _convolve_full_fft(xp, u, w, self._spectra, padded)
        else:
            g = _convolve_full_direct(xp, u, w)
        return _as(xp, pad2d_adjoint(g, self.pads, self.pad_mode, hw), u_dtype)

    def _working(self, a: Any) -> tuple[Any, Any]:
        """``a`` and the weights in the dtype the products run in: the input's, except that
        FFTs of float16 (and bfloat16) run in float32 (numpy's and torch's CPU FFTs take
        nothing narrower); the results are cast back."""
        xp = self.xp
        if self.method == "fft" and xp.finfo(a.dtype).bits < 32:
            a = xp.astype(a, xp.float32)
        return a, self._weights(a.dtype)[0]

    def _forward(self, x: Any) -> Any:
        y = self.apply_linear(x)
        _, b = self._weights(x.dtype)
        return y if b is None else y + b

    def _linearize(self, x: Any) -> Linearization:
        hw = (x.shape[-2], x.shape[-1])
        return Linearization(
            x, self._forward(x), self.apply_linear, lambda u: self.apply_adjoint(u, hw)
        )


def _as(xp: Any, a: Any, dtype: Any) -> Any:
    return a if a.dtype == dtype else xp.astype(a, dtype)


def same_weights_place(x: Any, weight: Any, *, what: str) -> None:
    try:
        namespace_and_device(x, weight)
    except TypeError:
        raise TypeError(
            f"x is a {type(x).__module__}.{type(x).__name__} but this {what}'s weights are "
            f"{type(weight).__module__}.{type(weight).__name__}; build the model with weights "
            "of x's library (filters take backend= and device=)"
        ) from None
    except ValueError as exc:
        raise ValueError(
            f"x and this {what}'s weights live on different devices ({exc}); build the model "
            "on x's device"
        ) from None
