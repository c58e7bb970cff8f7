"""The operator base class, the identity, composition, and wrapping of user callables."""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["Box", "Compose", "Identity", "Lambda", "Operator", "as_operator"]


class Box(NamedTuple):
    """Rows ``top:top+height`` and columns ``left:left+width`` of an image."""

    top: int
    left: int
    height: int
    width: int


class Operator(nn.Module):
    """A forward model ``y = A(x)`` on ``(B, C, H, W)`` tensors, and what it supports.

    Subclasses implement :meth:`forward`; the fitting loop needs nothing else. The rest says what the
    pipeline may do with the operator, so no part of it has to ask which operator it holds:

    - :attr:`direct`: ``y`` is ``x`` itself, pixel for pixel (denoising), so noise clipped to [0, 1]
      leaves the clipped-noise residual and a filter of ``y`` (the Wiener stage) can refine the fit;
    - :meth:`restrict`: the same operator on one tile of the image (tiled restoration of large images);
    - :meth:`adjoint`: ``A^T y``, by automatic differentiation unless a subclass knows a cheaper way.
    """

    direct: bool = False

    def restrict(self, box: Box) -> tuple[Operator, Box]:
        """The operator seen by the image tile ``box``, and the part of the measurement it produces.
        Raises ``ValueError`` when the operator cannot be cut into tiles."""
        raise ValueError(f"tiling is not available for the operator {type(self).__name__}")

    def first_guess(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        """A quick classical estimate of ``x`` from ``y`` (a network input or a starting point): here
        ``A^T y``; operators that know better (an interpolation, a fill) override it."""
        return self.adjoint(y, image_shape).clamp(0, 1)

    def classical(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        """The classical reconstruction a deep-prior result is measured against, to average with it where
        that helps (``Preset.classical_weight``): here :meth:`first_guess`; a mask gives biharmonic
        inpainting."""
        return self.first_guess(y, image_shape)

    def adjoint(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        """``A^T y`` for a linear operator, as the vector-Jacobian product at zero (``image_shape`` is x's).

        >>> op = Compose(Identity())
        >>> op.adjoint(torch.ones(1, 1, 2, 2), (1, 1, 2, 2)).sum().item()
        4.0
        """
        x = torch.zeros(image_shape, dtype=y.dtype, device=y.device, requires_grad=True)
        (grad,) = torch.autograd.grad(self(x), x, grad_outputs=y)
        return grad


class Identity(Operator):
    """y = x: denoising and JPEG-artifact removal.

    >>> Identity()(torch.ones(1, 1, 2, 2)).sum().item()
    4.0
    """

    direct = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def restrict(self, box: Box) -> tuple[Operator, Box]:
        return self, box

    def adjoint(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        return y

    def first_guess(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        return y


class Compose(Operator):
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


class Lambda(Operator):
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


def as_operator(op: nn.Module | Callable[[torch.Tensor], torch.Tensor] | None) -> Operator:
    """Turn ``None`` (identity), a module, or a plain callable into an :class:`Operator`."""
    if op is None:
        return Identity()
    if isinstance(op, Operator):
        return op
    if callable(op):  # a plain nn.Module is a callable too: wrapped, it keeps its forward
        return Lambda(op)
    raise TypeError(f"an operator must be an nn.Module or a callable, not {type(op).__name__}")
