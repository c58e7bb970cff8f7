"""Downsampling by an integer factor with a fixed anti-aliasing kernel."""
from __future__ import annotations

import torch
from torch import nn

from deepprior.operators.base import Box, Operator
from deepprior.operators.kernels import resampling_kernel

__all__ = ["Downsample"]


class Downsample(Operator):
    """y = (k * x) sampled every ``factor`` pixels: super-resolution.

    The default kernel is the paper's Lanczos-2 (a = 2, ``4 * factor`` taps,
    phase 0.5). The input is replicate-padded so that an ``H x W`` image
    gives exactly ``H / factor x W / factor`` (sizes that are multiples of the
    factor; others are floored). Channels are filtered independently.

    >>> y = Downsample(4)(torch.full((1, 3, 16, 16), 0.5))
    >>> tuple(y.shape), bool(torch.allclose(y, torch.tensor(0.5)))
    ((1, 3, 4, 4), True)
    """

    def __init__(self, factor: int, kernel: str = "lanczos2") -> None:
        super().__init__()
        if int(factor) != factor or factor < 1:
            raise ValueError(f"downsampling factor must be a positive integer, got {factor}")
        self.factor = int(factor)
        self.kernel_name = kernel
        k = torch.as_tensor(resampling_kernel(kernel, self.factor), dtype=torch.float32)
        self.register_buffer("kernel", k[None, None], persistent=False)
        total = k.shape[-1] - self.factor
        self.pads = (total // 2, total - total // 2) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = nn.functional.pad(x, self.pads, mode="replicate")
        weight = self.kernel.to(dtype=x.dtype, device=x.device).expand(c, 1, -1, -1)
        return nn.functional.conv2d(x, weight, stride=self.factor, groups=c)

    def restrict(self, box: Box) -> tuple[Operator, Box]:
        f = self.factor
        if any(v % f for v in box):
            raise ValueError(f"super-resolution tiles must align to the scale {f}")
        return self, Box(box.top // f, box.left // f, box.height // f, box.width // f)

    def first_guess(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        """Bicubic interpolation of ``y`` to the image's size."""
        up = nn.functional.interpolate(y, size=tuple(image_shape[-2:]), mode="bicubic", align_corners=False)
        return up.clamp(0, 1)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, kernel={self.kernel_name!r}"
