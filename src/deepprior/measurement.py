"""What a restoration fits: the data ``y``, the forward model ``A`` and the noise ``N`` of ``y = N(A(x))``.

The operator says what it supports (:class:`~deepprior.operators.Operator`), the noise model how noisy
the data is (:mod:`deepprior.noise`), and this object carries both with the data and the size of ``x``, so
everything downstream (the stopping rule, the SURE loss, the Wiener stage, tiling) asks it rather than
re-deciding from the task.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from deepprior.noise import Noiseless, NoiseModel
from deepprior.operators import Box, Identity, Operator

__all__ = ["Measurement"]


@dataclass(frozen=True)
class Measurement:
    """``y = N(A(x))``.

    Attributes
    ----------
    data : ``y`` as ``(h, w, C)`` float32 in [0, 1].
    operator : ``A``, mapping a ``(1, C, H, W)`` image to ``y``'s shape.
    noise : ``N``.
    image_size : ``(H, W)`` of ``x`` (``y``'s size times the scale for super-resolution).

    >>> m = Measurement(np.zeros((8, 8, 3), np.float32))
    >>> m.image_size, m.channels, m.sigma, m.direct
    ((8, 8), 3, None, True)
    """

    data: np.ndarray
    operator: Operator = field(default_factory=Identity)
    noise: NoiseModel = field(default_factory=Noiseless)
    image_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"measurement data must be (h, w, C), got shape {self.data.shape}")
        if self.image_size == (0, 0):
            object.__setattr__(self, "image_size", tuple(self.data.shape[:2]))

    @property
    def channels(self) -> int:
        return int(self.data.shape[2])

    @property
    def sigma(self) -> float | None:
        """The noise level on the [0, 1] scale, if the noise model has one."""
        return self.noise.sigma

    @property
    def direct(self) -> bool:
        """``y`` is the image itself plus noise (see :attr:`Operator.direct`)."""
        return self.operator.direct

    def tensor(self) -> torch.Tensor:
        """``y`` as a ``(1, C, h, w)`` tensor."""
        return torch.from_numpy(np.ascontiguousarray(self.data.transpose(2, 0, 1)))[None].float()

    def restrict(self, box: Box) -> Measurement:
        """The measurement of the image tile ``box``: the operator restricted to it and its part of ``y``
        (``ValueError`` when the operator cannot be tiled)."""
        operator, part = self.operator.restrict(box)
        data = self.data[part.top : part.top + part.height, part.left : part.left + part.width]
        return Measurement(np.ascontiguousarray(data), operator, self.noise, (box.height, box.width))
