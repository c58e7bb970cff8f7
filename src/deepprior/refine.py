"""A second, classical stage after a denoising fit: empirical Wiener filtering with the fit as pilot.

The fitted image is a good estimate of *which* local structures are in the
picture but, stopped early, it is both a little too smooth and a little
noisy. The empirical Wiener filter (Ghael, Sayeed and Baraniuk 1997; the
second stage of BM3D, Dabov et al. 2007) uses it only as a guide: in the 2-D
DCT of every window of the *noisy* image, each coefficient is shrunk by
``p^2 / (p^2 + sigma^2)``, where ``p`` is the pilot's coefficient, and the
overlapping windows are averaged, each weighted by the inverse of its
estimated residual variance. Colour images are filtered plane by plane after
an orthonormal colour transform, so white noise stays white with the same
sigma: the fixed opponent transform (luminance and two colour differences)
or the image's own principal colour axes, computed from the pilot.

Which transform and window size suit an image best varies (the principal
axes gain most on images of few hues, a fixed opponent space on others), so
:func:`wiener_mix` filters with several and combines them with the weights
that minimise Stein's unbiased risk estimate (SURE) of the mixture's error.
Each filter is linear in the noisy image once the pilot is fixed, so its
divergence, which SURE needs, is exact and cheap. Everything needs the noise
level (given or estimated) and an identity forward model.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = [
    "COLOUR_BASES",
    "WienerMix",
    "check_pair",
    "dct_basis",
    "dct_matrix",
    "into_colours",
    "out_of_colours",
    "principal_colours",
    "sure_weights",
    "wiener_mix",
    "wiener_refine",
]

#: Orthonormal opponent colour transform: luminance, red-blue, green-magenta.
_OPPONENT = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]])
_OPPONENT = _OPPONENT / _OPPONENT.norm(dim=1, keepdim=True)

#: The colour transforms :func:`wiener_refine` knows.
COLOUR_BASES = ("opponent", "principal")


def dct_basis(size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``size**2`` orthonormal 2-D DCT-II basis images, ``(size**2, 1, size, size)``, as convolution filters."""
    d = dct_matrix(size)
    return torch.einsum("ai,bj->abij", d, d).reshape(size * size, 1, size, size).to(dtype)


def dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal 1-D DCT-II matrix, ``(size, size)``: row ``k`` is the ``k``-th basis vector."""
    k = torch.arange(size, dtype=torch.float64)[:, None]
    i = torch.arange(size, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * size)) * math.sqrt(2 / size)
    d[0] /= math.sqrt(2)
    return d


class _WindowDCT:
    """The 2-D DCT of every ``size`` x ``size`` window of a plane, and its adjoint, as two 1-D passes.

    The same as convolving with the ``size**2`` basis images of
    :func:`dct_basis` (in another order of coefficients), but ``size / 2``
    times fewer operations: rows first, then columns.
    """

    def __init__(self, size: int, stride: int, device: torch.device) -> None:
        d = dct_matrix(size).to(torch.float32).to(device)
        self.size, self.stride = size, stride
        self.rows = d[:, None, None, :]  # (size, 1, 1, size): along each row
        self.columns = d[:, None, :, None].repeat(size, 1, 1, 1)  # (size^2, 1, size, 1), one group per row filter
        self.rows_sq, self.columns_sq = self.rows.square(), self.columns.square()
        self.box = torch.ones(1, 1, size, size, device=device)

    def analysis(self, plane: torch.Tensor) -> torch.Tensor:
        """``(1, 1, H, W)`` -> ``(1, size^2, rows, cols)``: every window's coefficients."""
        horizontal = F.conv2d(plane, self.rows, stride=(1, self.stride))
        return F.conv2d(horizontal, self.columns, stride=(self.stride, 1), groups=self.size)

    def synthesis(self, coefficients: torch.Tensor, squared: bool = False) -> torch.Tensor:
        """The adjoint: each window's coefficients back to pixels, the windows summed (``squared``: with the
        squared basis images, which sums each pixel's own gain)."""
        rows, columns = (self.rows_sq, self.columns_sq) if squared else (self.rows, self.columns)
        vertical = F.conv_transpose2d(coefficients, columns, stride=(self.stride, 1), groups=self.size)
        return F.conv_transpose2d(vertical, rows, stride=(1, self.stride))

    def window_sum(self, per_window: torch.Tensor) -> torch.Tensor:
        """``(1, 1, rows, cols)`` -> each pixel's sum over the windows that cover it."""
        return F.conv_transpose2d(per_window, self.box, stride=self.stride)


def principal_colours(image: torch.Tensor) -> torch.Tensor:
    """The principal axes of ``image``'s colours (``(1, 3, H, W)``), as the rows of an orthonormal 3x3 matrix.

    The first row is the direction of largest colour variance: on an image of
    few hues it carries nearly all the structure, and the other two nearly
    none, which the Wiener gains then remove.
    """
    colours = image[0].reshape(image.shape[1], -1).double()
    colours = colours - colours.mean(dim=1, keepdim=True)
    _, vectors = torch.linalg.eigh(colours @ colours.T)
    return vectors.T.flip(0).to(torch.float32)


def _colour_matrix(colour: str, pilot: torch.Tensor) -> torch.Tensor:
    if colour == "opponent":
        return _OPPONENT.to(pilot.device)
    if colour == "principal":
        return principal_colours(pilot).to(pilot.device)
    raise ValueError(f"unknown colour transform {colour!r} (use {', '.join(COLOUR_BASES)})")


def check_pair(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> None:
    """Refuse a noisy image and pilot that are not both ``(1, C, H, W)`` of one shape, or a sigma not above 0."""
    if noisy.shape != pilot.shape or noisy.ndim != 4 or noisy.shape[0] != 1:
        raise ValueError(f"noisy and pilot must both be (1, C, H, W), got {tuple(noisy.shape)} and {tuple(pilot.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")


def wiener_refine(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, *, patch: int = 8,
                  stride: int = 1, band: int | None = None, colour: str = "opponent") -> torch.Tensor:
    """Empirical Wiener filtering of ``noisy`` guided by ``pilot`` (both ``(1, C, H, W)`` in [0, 1]).

    ``sigma`` is the noise standard deviation on the [0, 1] scale; windows of
    ``patch`` x ``patch`` pixels start every ``stride`` pixels (every pixel
    by default; 2 is 4x cheaper and about 0.1 dB worse); rows of window
    starts are processed ``band`` at a time (by default as many as keep each
    array of DCT coefficients under 64 MiB), so large images need little
    memory. ``colour`` picks the colour transform of 3-channel images
    (:data:`COLOUR_BASES`).

    >>> clean = torch.linspace(0, 1, 32).repeat(1, 3, 32, 1)
    >>> noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    >>> refined = wiener_refine(noisy, clean, 0.1)
    >>> bool(((refined - clean) ** 2).mean() < ((noisy - clean) ** 2).mean() / 4)
    True
    """
    check_pair(noisy, pilot, sigma)
    if min(noisy.shape[-2:]) < patch:
        return pilot
    estimate, _ = _wiener(noisy, pilot, sigma, patch, stride, band, colour)
    return estimate.clamp(0, 1).to(noisy.dtype)


def _wiener(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, patch: int, stride: int, band: int | None,
            colour: str) -> tuple[torch.Tensor, float]:
    """The filtered image (unclipped, float32) and its divergence with respect to ``noisy`` (the pilot held fixed)."""
    y, p, matrix = into_colours(noisy, pilot, colour)
    out, divergence = _wiener_planes(y, p, sigma, patch, stride, band)
    return out_of_colours(out, matrix), divergence


def into_colours(noisy: torch.Tensor, pilot: torch.Tensor,
                  colour: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Both images in float32, in the colour space ``colour`` when they have 3 channels, and its matrix."""
    y, p = noisy.float(), pilot.float()
    if y.shape[1] != 3:
        return y, p, None
    matrix = _colour_matrix(colour, p)
    return torch.einsum("ij,njhw->nihw", matrix, y), torch.einsum("ij,njhw->nihw", matrix, p), matrix


def out_of_colours(image: torch.Tensor, matrix: torch.Tensor | None) -> torch.Tensor:
    """The inverse of :func:`into_colours` (the matrix is orthonormal: its transpose)."""
    return image if matrix is None else torch.einsum("ji,njhw->nihw", matrix, image)


def _wiener_planes(y: torch.Tensor, p: torch.Tensor, sigma: float, patch: int, stride: int,
                   band: int | None) -> tuple[torch.Tensor, float]:
    """:func:`_wiener` on images already in their colour space, plane by plane. An orthonormal colour
    transform leaves the divergence unchanged. Exact with ``stride`` 1; with a larger stride on a size that
    needs padding, the padded copies of the last rows and columns are not counted."""
    _, channels, height, width = y.shape
    pad_h, pad_w = -(height - patch) % stride, -(width - patch) % stride
    if pad_h or pad_w:  # so the last window ends on the last pixel
        y = F.pad(y, (0, pad_w, 0, pad_h), mode="replicate")
        p = F.pad(p, (0, pad_w, 0, pad_h), mode="replicate")
    transform = _WindowDCT(patch, stride, y.device)
    out = torch.empty_like(y)
    divergence = 0.0
    if band is None:
        band = stride * max(1, (1 << 24) // (patch * patch * (y.shape[3] // stride + 1)))
    band = max(band // stride * stride, stride)
    rows = y.shape[2]
    for c in range(channels):
        numerator = torch.zeros_like(y[:, c : c + 1])
        denominator = torch.zeros_like(numerator)
        trace = torch.zeros_like(numerator)
        for top in range(0, rows - patch + 1, band):  # windows starting in [top, top + band)
            bottom = min(top + band - stride + patch, rows)
            window_y, window_p = y[:, c : c + 1, top:bottom], p[:, c : c + 1, top:bottom]
            num, den, tr = _filter_parts(window_y, window_p, transform, sigma**2)
            numerator[:, :, top:bottom] += num
            denominator[:, :, top:bottom] += den
            trace[:, :, top:bottom] += tr
        out[:, c : c + 1] = numerator / denominator
        # d out_i / d y_i, summed over the pixels that are part of the image (not the padding)
        divergence += float((trace / denominator)[..., :height, :width].sum())
    return out[..., :height, :width], divergence


def _filter_parts(noisy: torch.Tensor, pilot: torch.Tensor, transform: _WindowDCT,
                  variance: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weighted sums of filtered windows, of their weights, and of each pixel's own gain, for one band."""
    y = transform.analysis(noisy)  # (1, patch^2, rows, cols): every window's DCT
    p = transform.analysis(pilot)
    p.square_()
    gain = p.div_(p + variance)
    weight = 1.0 / (variance * gain.square().sum(dim=1, keepdim=True)).clamp_min(1e-12)
    gain.mul_(weight)
    y.mul_(gain)
    numerator = transform.synthesis(y)
    denominator = transform.window_sum(weight)
    trace = transform.synthesis(gain, squared=True)  # sum over windows of weight * d out_i / d y_i
    return numerator, denominator, trace


@dataclass
class WienerMix:
    """The result of :func:`wiener_mix`: the image, and how it was made."""

    image: torch.Tensor
    weights: dict[str, float] = field(default_factory=dict)
    """Each filter's weight in the mixture, keyed ``"<colour> <patch>"``; they sum to 1."""
    risk: float = 0.0
    """SURE's estimate of the mixture's mean squared error per value (pilot held fixed: an underestimate)."""
    patches: list[int] = field(default_factory=list)
    """The window sizes used (those no larger than the image)."""
    colours: list[str] = field(default_factory=list)
    """The colour transforms used (none for a grey image)."""


def wiener_mix(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, *, patches: Sequence[int] = (6, 8, 10),
               colours: Sequence[str] = COLOUR_BASES, stride: int = 1, band: int | None = None) -> WienerMix:
    """Wiener-filter ``noisy`` with every window size in ``patches`` and colour transform in ``colours``,
    and mix the results with the convex weights that minimise SURE (Stein 1981).

    Grey images use the window sizes only. With one filter this is
    :func:`wiener_refine`. The pilot comes from the noisy image, so SURE
    with the pilot held fixed is biased, but alike for every filter: the
    bias largely cancels in the choice of weights, which is all it is used for.
    """
    check_pair(noisy, pilot, sigma)
    patches = [k for k in dict.fromkeys(patches) if k <= min(noisy.shape[-2:])]
    if not patches:
        return WienerMix(pilot.clone(), {}, float("nan"))
    grey = noisy.shape[1] != 3
    colours = [] if grey else list(dict.fromkeys(colours))
    names, estimates, divergences = [], [], []
    for colour in colours or ["grey"]:
        y, p, matrix = into_colours(noisy, pilot, colour)  # once per colour space, for every window size
        for patch in patches:
            estimate, divergence = _wiener_planes(y, p, sigma, patch, stride, band)
            names.append(f"{colour} {patch}")
            estimates.append(out_of_colours(estimate, matrix))
            divergences.append(divergence)
    y = noisy.float()
    gram = _residual_gram(estimates, y)
    weights, risk = sure_weights(gram, torch.tensor(divergences, dtype=torch.float64), sigma**2, y.numel())
    mixed = sum(float(w) * e for w, e in zip(weights, estimates))
    return WienerMix(mixed.clamp(0, 1).to(noisy.dtype), {n: round(float(w), 4) for n, w in zip(names, weights)},
                     risk, patches, colours)


def _residual_gram(estimates: list[torch.Tensor], y: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """The Gram matrix of the residuals ``estimate - y``, in float64, a chunk of values at a time (large images)."""
    flat_y = y.flatten()
    flat = [e.flatten() for e in estimates]
    gram = torch.zeros(len(flat), len(flat), dtype=torch.float64)
    for start in range(0, flat_y.numel(), chunk):
        part = torch.stack([f[start : start + chunk] for f in flat]).double() - flat_y[start : start + chunk].double()
        gram += (part @ part.T).cpu()
    return gram


def sure_weights(gram: torch.Tensor, divergences: torch.Tensor, variance: float, count: int) -> tuple[torch.Tensor, float]:
    """The convex weights ``a`` (``a >= 0``, ``sum(a) = 1``) minimising SURE of ``sum_k a_k x_k``.

    For estimates ``x_k`` of a signal seen as ``y`` plus white noise of
    ``variance``, SURE of a mixture is ``(a' G a + 2 variance a' d) / count -
    variance``, with ``G`` the Gram matrix of the residuals ``x_k - y`` and
    ``d`` the divergences. The minimum over the simplex is found exactly, by
    solving the equality-constrained problem on every support (a handful of
    filters: at most a few hundred small solves). Returns the weights and
    the minimum risk per value.
    """
    k = gram.shape[0]
    linear = variance * divergences
    best, best_value = None, math.inf
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            idx = list(support)
            g = gram[idx][:, idx]
            # minimise a'Ga + 2 l'a subject to 1'a = 1:  [2G 1; 1' 0] [a; mu] = [-2l; 1]
            system = torch.zeros(size + 1, size + 1, dtype=torch.float64)
            system[:size, :size] = 2 * g
            system[:size, size] = system[size, :size] = 1
            rhs = torch.cat([-2 * linear[idx], torch.ones(1, dtype=torch.float64)])
            solution = torch.linalg.lstsq(system, rhs[:, None]).solution[:size, 0]
            if bool((solution < -1e-12).any()):
                continue
            a = torch.zeros(k, dtype=torch.float64)
            a[idx] = solution.clamp_min(0)
            a /= a.sum()
            value = float(a @ gram @ a + 2 * linear @ a)
            if value < best_value:
                best, best_value = a, value
    assert best is not None  # every single filter is a feasible support
    return best, best_value / count - variance
