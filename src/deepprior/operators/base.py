"""The identity operator, composition, and wrapping of user callables."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["Identity", "Compose", "Lambda", "as_operator"]


class Identity(nn.Module):
    """y = x: denoising and JPEG-artifact removal.

    >>> Identity()(torch.ones(1, 1, 2, 2)).sum().item()
    4.0
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Compose(nn.Module):
    """y = A_n(... A_2(A_1(x))): operators applied in the order given.

    >>> from deepprior.operators import Blur, Downsample
    >>> op = Compose(Blur.gaussian(1.0), Downsample(2))
    >>> op(torch.rand(1, 3, 8, 8)).shape
    torch.Size([1, 3, 4, 4])
    """

    def __init__(self, *operators: nn.Module | Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        if not operators:
            raise ValueError("Compose needs at least one operator")
        self.operators = nn.ModuleList(as_operator(op) for op in operators)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.operators:
            x = op(x)
        return x


class Lambda(nn.Module):
    """Wrap any differentiable function of a ``(B, C, H, W)`` tensor as an operator.

    >>> square = Lambda(lambda x: x ** 2)
    >>> square(torch.full((1, 1, 1, 1), 3.0)).item()
    9.0
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def as_operator(op: nn.Module | Callable[[torch.Tensor], torch.Tensor] | None) -> nn.Module:
    """Turn ``None`` (identity), a module, or a plain callable into an operator module."""
    if op is None:
        return Identity()
    if isinstance(op, nn.Module):
        return op
    if callable(op):
        return Lambda(op)
    raise TypeError(f"an operator must be an nn.Module or a callable, not {type(op).__name__}")
