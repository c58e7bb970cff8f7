"""Fixed network inputs z: the 'code' the generator maps to the image.

The paper feeds uniform noise scaled by 0.1 for most tasks, a 2-channel
coordinate grid for large-hole inpainting, and the flash photograph itself
for flash / no-flash reconstruction.
"""
from __future__ import annotations

import torch

__all__ = ["INPUT_KINDS", "meshgrid_input", "noise_input"]

INPUT_KINDS = ("noise", "meshgrid", "image")


def noise_input(
    channels: int, height: int, width: int, *, scale: float = 0.1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform noise in ``[0, scale)`` of shape ``(1, channels, height, width)``.

    >>> z = noise_input(32, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> z.shape, bool(z.max() < 0.1)
    (torch.Size([1, 32, 8, 8]), True)
    """
    return torch.rand((1, channels, height, width), generator=generator) * scale


def meshgrid_input(height: int, width: int) -> torch.Tensor:
    """Two channels holding the x and y coordinates, each spanning [0, 1].

    >>> g = meshgrid_input(3, 5)
    >>> g[0, 0, 0].tolist(), g[0, 1, :, 0].tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 1.0])
    """
    ys = torch.linspace(0.0, 1.0, height) if height > 1 else torch.zeros(1)
    xs = torch.linspace(0.0, 1.0, width) if width > 1 else torch.zeros(1)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])[None]
