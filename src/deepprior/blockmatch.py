"""Collaborative Wiener filtering: similar patches, found in the pilot, filtered together.

The sliding-window Wiener filter of :mod:`deepprior.refine` shrinks each
window's DCT on its own. Natural images repeat themselves (a stripe of a
tablecloth, the edge of a wing), and a stack of similar patches is far
sparser in a 3-D transform than one patch in 2-D: this is the second stage
of BM3D (Dabov, Foi, Katkovnik and Egiazarian 2007). For every reference
patch on a grid, the ``group`` patches closest to it *in the pilot* within a
search window are stacked; the stack of noisy patches is taken to a 3-D
orthonormal DCT, each coefficient is shrunk by ``p^2 / (p^2 + sigma^2)`` with
``p`` the pilot stack's coefficient, and the filtered patches go back to
their places, each stack weighted by the inverse of its estimated residual
variance and every patch by a Kaiser window.

The matching depends on the pilot only, so once the pilot is fixed the
filter is linear in the noisy image, and its divergence (which SURE needs to
weigh it against other filters) is the sum of each pixel's own gain. That
sum leaves out the rare case of one pixel met twice in a stack (two
overlapping matched patches); it is used to choose mixture weights only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from deepprior.refine import check_pair, dct_matrix, into_colours, out_of_colours

__all__ = ["candidates", "collaborative_refine", "collaborative_wiener", "match"]


def _starts(length: int, patch: int, stride: int) -> torch.Tensor:
    """Window starts every ``stride`` pixels, the last one ending on the last pixel."""
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return torch.tensor(starts)


def candidates(height: int, width: int, patch: int, search: int) -> int:
    """The fewest patches within ``search`` pixels that any reference patch of a ``height`` x ``width`` plane has
    (itself included): the most a stack can hold without reaching outside the image."""
    return (min(search, height - patch) + 1) * (min(search, width - patch) + 1)


def match(guide: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, patch: int, group: int,
          search: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block matching on one plane ``guide`` ``(H, W)``: for every reference patch whose top-left corner is
    at one of ``rows`` x ``cols``, the top-left corners of the ``group`` patches within ``search`` pixels
    that differ least from it (itself included; never a patch reaching outside the image, so ``group`` is at
    most :func:`candidates`). Returns their rows and columns, each ``(references, group)``.

    The squared differences for one vertical offset and every horizontal one are summed over each patch in two
    1-D passes, and only where references are: several times fewer operations than a 2-D box filter at every
    pixel.
    """
    height, width = guide.shape
    group = min(group, candidates(height, width, patch, search))
    top, bottom = int(rows[0]), int(rows[-1]) + patch  # the band of the image the references cover
    padded = F.pad(guide[None, None], (search,) * 4)[0, 0]  # values outside the image never count (see below)
    band = padded[top + search : bottom + search, search : search + width]
    dxs = torch.arange(-search, search + 1)
    window = torch.arange(-search, search + 1)
    distances = torch.empty(window.numel(), rows.numel(), dxs.numel(), cols.numel())
    ref_rows = rows - top
    for i, dy in enumerate(window.tolist()):
        shifted = padded[top + search + dy : bottom + search + dy]  # (band rows, W + 2 search)
        stacked = shifted.unfold(1, width, 1)  # (band rows, offsets, W): every horizontal shift of the band
        squared = (band[:, None, :] - stacked).square_()
        vertical = sum(squared[ref_rows + u] for u in range(patch))  # (reference rows, offsets, W)
        distances[i] = sum(vertical[..., cols + v] for v in range(patch))
    # a candidate reaching outside the image is never chosen
    ref_y, ref_x = (t.flatten() for t in torch.meshgrid(rows, cols, indexing="ij"))
    cand_y = ref_y[None, :] + window[:, None]  # (vertical offsets, references)
    cand_x = ref_x[None, :] + dxs[:, None]
    outside_y = ((cand_y < 0) | (cand_y > height - patch))[:, None, :]
    outside_x = ((cand_x < 0) | (cand_x > width - patch))[None, :, :]
    distances = distances.transpose(1, 2).reshape(window.numel(), dxs.numel(), -1)
    distances.masked_fill_(outside_y | outside_x, float("inf"))
    distances[search, search] = -1.0  # the reference itself always leads its stack, even among ties
    best = distances.reshape(-1, ref_y.numel()).topk(group, dim=0, largest=False).indices.T
    return ref_y[:, None] + window[best // dxs.numel()], ref_x[:, None] + dxs[best % dxs.numel()]


def _kaiser(patch: int, beta: float = 2.0) -> torch.Tensor:
    window = torch.kaiser_window(patch, periodic=False, beta=beta)
    return torch.outer(window, window).flatten()


def collaborative_wiener(y: torch.Tensor, pilot: torch.Tensor, sigma: float, *, patch: int = 8, group: int = 16,
                         search: int = 16, stride: int = 3, budget: int = 1 << 24,
                         divergence: bool = True) -> tuple[torch.Tensor, float]:
    """Collaborative Wiener filtering of the planes ``y`` (``(1, C, H, W)``, float32, already in an
    orthonormal colour space whose first plane carries the structure) guided by ``pilot`` (same shape).

    Stacks of ``group`` patches of ``patch`` x ``patch`` pixels are matched on
    the pilot's first plane, within ``search`` pixels of each reference patch
    (references every ``stride`` pixels, plus the last row and column), and
    every plane is filtered with the same stacks. Rows of references are taken
    a band at a time, so that no array holds much more than ``budget`` values.
    Returns the filtered planes (unclipped) and the divergence with respect to ``y`` (NaN unless
    ``divergence``; it costs a third of the time).
    """
    _, channels, height, width = y.shape
    if min(height, width) < patch:
        raise ValueError(f"the image ({height}x{width}) is smaller than a {patch}x{patch} patch")
    rows, cols = _starts(height, patch, stride), _starts(width, patch, stride)
    per_row = cols.numel() * max((2 * search + 1) ** 2, group * patch * patch * channels)
    band = max(1, budget // per_row)
    u, v = torch.meshgrid(torch.arange(patch), torch.arange(patch), indexing="ij")
    inner = (u * width + v).flatten()  # a patch's pixels relative to its corner, in the flattened plane
    d2 = torch.kron(dct_matrix(patch), dct_matrix(patch)).float()  # (patch^2, patch^2): the 2-D DCT of a flat patch
    group = min(group, candidates(height, width, patch, search))
    dk = dct_matrix(group).float()
    kaiser = _kaiser(patch)
    variance = sigma**2
    flat_y, flat_p = y[0].reshape(channels, -1), pilot[0].reshape(channels, -1)
    numerator = torch.zeros_like(flat_y)
    denominator = torch.zeros_like(flat_y)
    trace = torch.zeros_like(flat_y) if divergence else None
    for first in range(0, rows.numel(), band):
        ys, xs = match(pilot[0, 0], rows[first : first + band], cols, patch, group, search)
        corners = ys * width + xs  # (n, group)
        pixels = (corners[..., None] + inner).reshape(-1)  # (n * group * patch^2,)
        n = corners.shape[0]

        def stacks(flat: torch.Tensor, n: int = n, pixels: torch.Tensor = pixels) -> torch.Tensor:
            return flat[:, pixels].reshape(channels, n, group, patch * patch)

        coef_y = dk @ (stacks(flat_y) @ d2.T)  # each stack's 3-D DCT, (C, n, group, patch^2)
        power = (dk @ (stacks(flat_p) @ d2.T)).square_()
        gain = power.div_(power + variance)
        weight = 1.0 / (variance * gain.square().sum(dim=(2, 3), keepdim=True)).clamp_min(1e-12)
        filtered = dk.T @ (gain * coef_y) @ d2  # back to pixels
        patch_weight = weight * kaiser  # (C, n, 1, patch^2), the same for every patch of a stack
        numerator.index_add_(1, pixels, (filtered * patch_weight).reshape(channels, -1))
        denominator.index_add_(1, pixels, patch_weight.expand_as(filtered).reshape(channels, -1))
        if trace is not None:  # each filtered value's derivative with respect to its own noisy value
            own_gain = dk.T.square() @ gain @ d2.square()
            trace.index_add_(1, pixels, (own_gain * patch_weight).reshape(channels, -1))
    out = (numerator / denominator).reshape(1, channels, height, width)
    return out, float((trace / denominator).sum()) if trace is not None else float("nan")


def collaborative_refine(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, **options: int) -> torch.Tensor:
    """Collaborative Wiener filtering of ``noisy`` guided by ``pilot`` (both ``(1, C, H, W)`` in [0, 1]; colour
    images in the opponent space, matched on luminance), clipped to [0, 1]. ``options`` go to
    :func:`collaborative_wiener`; an image smaller than a patch is returned as the pilot.

    >>> clean = torch.linspace(0, 1, 32).repeat(1, 3, 32, 1)
    >>> noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    >>> refined = collaborative_refine(noisy, clean, 0.1)
    >>> bool(((refined - clean) ** 2).mean() < ((noisy - clean) ** 2).mean() / 10)
    True
    """
    check_pair(noisy, pilot, sigma)
    if min(noisy.shape[-2:]) < options.get("patch", 8):
        return pilot.clone()
    y, p, matrix = into_colours(noisy, pilot, "opponent")
    out, _ = collaborative_wiener(y, p, sigma, divergence=False, **options)
    return out_of_colours(out, matrix).clamp(0, 1).to(noisy.dtype)
