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
            m = m.permute(2, 0, 1)[None]
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


def bernoulli_mask(height: int, width: int, keep: float, *, seed: int | None = None) -> np.ndarray:
    """A random ``(H, W)`` mask keeping each pixel independently with probability ``keep``.

    >>> bernoulli_mask(2, 3, 1.0).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep ratio must be in (0, 1], got {keep}")
    rng = np.random.default_rng(seed)
    return (rng.random((height, width)) < keep).astype(np.float32)
