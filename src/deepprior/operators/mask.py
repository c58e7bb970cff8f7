"""Masking: inpainting and pixel-drop restoration."""
from __future__ import annotations

import numpy as np
import torch

from deepprior.operators.base import Box, Operator

__all__ = ["Mask", "bernoulli_mask"]


class Mask(Operator):
    """y = m ⊙ x with m = 1 where a pixel is known and 0 where it is missing.

    ``mask`` is ``(H, W)``, ``(H, W, C)`` or ``(B, C, H, W)``, NumPy or torch,
    values in [0, 1] (a mask image read as white = known works as is).

    >>> m = Mask(np.array([[1.0, 0.0]]))
    >>> m(torch.tensor([[[[3.0, 4.0]]]])).tolist()
    [[[[3.0, 0.0]]]]
    """

    def __init__(self, mask: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        m = torch.tensor(np.asarray(mask, dtype=np.float32)) if not torch.is_tensor(mask) else mask.detach().clone().float()
        if m.ndim == 2:
            m = m[None, None]
        elif m.ndim == 3:
            m = m.permute(2, 0, 1)[None].contiguous()
        elif m.ndim != 4:
            raise ValueError(f"a mask must be 2-, 3- or 4-dimensional, got shape {tuple(m.shape)}")
        self.register_buffer("mask", m)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the mask."""
        return int(self.mask.shape[-2]), int(self.mask.shape[-1])

    @property
    def known_fraction(self) -> float:
        return float(self.mask.mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(f"image is {tuple(x.shape[-2:])} but the mask is {tuple(self.mask.shape[-2:])}")
        return x * self.mask.to(dtype=x.dtype, device=x.device)

    def restrict(self, box: Box) -> tuple[Operator, Box]:
        top, left, h, w = box
        return Mask(self.mask[..., top : top + h, left : left + w].clone()), box

    def adjoint(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        return self(y)

    def first_guess(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        """The known pixels, and each unknown one filled by normalised convolution: the Gaussian-weighted mean
        of the known pixels around it, at the smallest scale (1, 2, 4... pixels) that reaches any.

        >>> m = Mask(torch.tensor([[1.0, 0.0, 1.0]]))
        >>> m.first_guess(torch.tensor([[[[0.2, 0.0, 0.4]]]]), (1, 1, 1, 3)).tolist()
        [[[[0.20000000298023224, 0.30000001192092896, 0.4000000059604645]]]]
        """
        mask = self.mask.to(dtype=y.dtype, device=y.device).expand_as(y)
        known = y * mask
        out = known.clone()
        todo = mask < 0.5
        sigma = 1.0
        while bool(todo.any()) and sigma <= 2 * max(y.shape[-2:]):
            weight, value = _blur(mask, sigma), _blur(known, sigma)
            reached = todo & (weight > 1e-4)
            out[reached] = (value[reached] / weight[reached]).clamp(0, 1)
            todo &= ~reached
            sigma *= 2
        return out

    def classical(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        """Biharmonic inpainting (scikit-image) of each channel: the unknown pixels made as smooth as the
        known ones allow.

        >>> m = Mask(torch.tensor([[1.0, 0.0, 1.0]]))
        >>> [round(v, 3) for v in m.classical(torch.tensor([[[[0.2, 0.0, 0.4]]]]), (1, 1, 1, 3)).flatten().tolist()]
        [0.2, 0.3, 0.4]
        """
        from skimage.restoration import inpaint_biharmonic

        mask = self.mask.expand(image_shape).cpu().numpy() < 0.5
        pixels = y.detach().float().cpu().numpy()
        out = pixels * ~mask
        for c in range(pixels.shape[1]):
            missing = mask[0, c]
            if missing.all():  # nothing to extend from: the smooth fill is all that can be said
                return self.first_guess(y, image_shape)
            if missing.any():
                out[0, c] = inpaint_biharmonic(pixels[0, c], missing)
        return torch.from_numpy(out).clamp(0, 1).to(dtype=y.dtype, device=y.device)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` with zero borders (so a normalised convolution sees no phantom pixels)."""
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    x = torch.nn.functional.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return torch.nn.functional.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


def bernoulli_mask(height: int, width: int, keep: float, *, seed: int | None = None) -> np.ndarray:
    """A random ``(H, W)`` mask keeping each pixel independently with probability ``keep``.

    >>> bernoulli_mask(2, 3, 1.0).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep ratio must be in (0, 1], got {keep}")
    rng = np.random.default_rng(seed)
    return (rng.random((height, width)) < keep).astype(np.float32)
