"""The ResNet generator of the paper's architecture comparison: no
downsampling at all, a stack of residual blocks at full resolution."""
from __future__ import annotations

import torch
from torch import nn

from deepprior.nets.layers import activation, conv, norm

__all__ = ["resnet"]


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet(
    in_channels: int,
    out_channels: int,
    *,
    blocks: int = 8,
    channels: int = 32,
    need_residual: bool = True,
    act: str = "LeakyReLU",
    norm_layer: str = "batch",
    pad: str = "reflection",
    need_sigmoid: bool = True,
) -> nn.Sequential:
    """Build the original ``ResNet``: a 3x3 stem, ``blocks`` residual blocks of
    [3x3 conv, norm, activation, 3x3 conv, norm] with an identity shortcut, a
    3x3 conv with norm, and a 3x3 output convolution (then a sigmoid).

    >>> net = resnet(1, 3, blocks=2, channels=8)
    >>> net(torch.rand(1, 1, 13, 17)).shape
    torch.Size([1, 3, 13, 17])
    """
    layers: list[nn.Module] = [conv(in_channels, channels, 3, bias=True, pad=pad), activation(act)]
    for _ in range(blocks):
        body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm(channels, norm_layer),
            activation(act),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm(channels, norm_layer),
        )
        layers.append(_Residual(body) if need_residual else body)
    layers += [nn.Conv2d(channels, channels, 3, padding=1), norm(channels, norm_layer)]
    layers.append(conv(channels, out_channels, 3, bias=True, pad=pad))
    if need_sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)
