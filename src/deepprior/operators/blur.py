"""Convolution with a known blur kernel."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepprior.operators.base import Box, Operator
from deepprior.operators.kernels import gaussian_kernel

__all__ = ["Blur"]


class Blur(Operator):
    """y = k * x, each channel convolved with the same 2-D kernel.

    The kernel is normalised to sum to 1; borders are reflect-padded so the
    output has the input's size.

    >>> Blur.gaussian(1.5)(torch.full((1, 1, 9, 9), 0.25)).allclose(torch.tensor(0.25))
    True
    """

    def __init__(self, kernel: np.ndarray | torch.Tensor, padding: str = "reflect") -> None:
        super().__init__()
        k = torch.as_tensor(np.asarray(kernel, dtype=np.float32) if not torch.is_tensor(kernel) else kernel).float()
        if k.ndim != 2 or k.shape[0] < 1 or k.shape[1] < 1:
            raise ValueError(f"a blur kernel must be a 2-D array, got shape {tuple(k.shape)}")
        if (k < 0).any() or not float(k.sum()) > 0:
            raise ValueError("a blur kernel must be non-negative with a positive sum")
        self.register_buffer("kernel", (k / k.sum())[None, None])
        kh, kw = k.shape
        self.pads = ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2)
        self.padding = padding

    @classmethod
    def gaussian(cls, sigma: float, radius: int | None = None) -> Blur:
        """An isotropic Gaussian blur of standard deviation ``sigma`` pixels."""
        return cls(gaussian_kernel(sigma, radius))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = nn.functional.pad(x, self.pads, mode=self.padding)
        weight = torch.flip(self.kernel, dims=(-2, -1)).to(dtype=x.dtype, device=x.device)
        return nn.functional.conv2d(x, weight.expand(c, 1, -1, -1), groups=c)

    def restrict(self, box: Box) -> tuple[Operator, Box]:
        # each tile is blurred on its own, its borders reflected: exact inside, close near tile edges,
        # which the tiles' overlap blends away
        return self, box
