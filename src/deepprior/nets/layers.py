"""Building blocks shared by the generators: padded convolutions, activations,
normalisations and a channel concatenation that tolerates size mismatches.

These follow the layer order of the original Deep Image Prior code so that the
paper's networks are reproduced exactly (same parameters, same order).
"""
from __future__ import annotations

import torch
from torch import nn

from deepprior.operators.downsample import Downsample

__all__ = ["PAD_MODES", "Concat", "activation", "conv", "norm"]

PAD_MODES = ("reflection", "zero")
DOWNSAMPLE_MODES = ("stride", "avg", "max", "lanczos2", "lanczos3")


def _dense_gradient(grad: torch.Tensor) -> torch.Tensor:
    """The gradient of one branch of a channel concatenation, copied into channels-last layout.

    That gradient reaches the branch as a slice of the joint gradient's
    channels: a strided view, dense in no memory layout, on which CPU kernels
    (bilinear upsampling's backward above all, then batch norm's) take a slow,
    generic path. One copy costs far less. The values are unchanged.
    """
    return grad.contiguous(memory_format=torch.channels_last)


class Concat(nn.Module):
    """Concatenate the outputs of several branches along the channel axis.

    Branch outputs whose spatial sizes differ (odd sizes halved and doubled)
    are centre-cropped to the smallest one, as in the original code. A
    channels-last branch gets its gradient back densely laid out (see
    :func:`_dense_gradient`), which changes the speed, never the values.
    """

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        for o in outs:
            if o.requires_grad and o.dim() == 4 and not o.is_contiguous() and o.is_contiguous(
                    memory_format=torch.channels_last):
                o.register_hook(_dense_gradient)
        h = min(o.shape[2] for o in outs)
        w = min(o.shape[3] for o in outs)
        cropped = []
        for o in outs:
            top = (o.shape[2] - h) // 2
            left = (o.shape[3] - w) // 2
            cropped.append(o[:, :, top : top + h, left : left + w])
        return torch.cat(cropped, dim=1)


def activation(name: str) -> nn.Module:
    """The activation named ``name``: LeakyReLU (slope 0.2, the paper's), ReLU,
    ELU, Swish/SiLU, Tanh or none."""
    key = name.lower()
    if key == "leakyrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    if key == "relu":
        return nn.ReLU(inplace=True)
    if key == "elu":
        return nn.ELU()
    if key in ("swish", "silu"):
        return nn.SiLU()
    if key == "tanh":
        return nn.Tanh()
    if key == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r} (use LeakyReLU, ReLU, ELU, Swish, Tanh or none)")


def norm(channels: int, kind: str = "batch") -> nn.Module:
    """A normalisation layer: batch norm (the paper's), instance norm, or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r} (use batch, instance or none)")


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    *,
    bias: bool = True,
    pad: str = "zero",
    downsample_mode: str = "stride",
) -> nn.Sequential:
    """A 'same' convolution, optionally downsampling by ``stride``.

    Layer order as in the original: padding, convolution, then (for
    ``downsample_mode`` other than ``stride``) a separate pooling or
    anti-aliasing layer that performs the downsampling.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"unknown padding {pad!r} (use {' or '.join(PAD_MODES)})")
    if downsample_mode not in DOWNSAMPLE_MODES:
        raise ValueError(f"unknown downsample mode {downsample_mode!r} (use {', '.join(DOWNSAMPLE_MODES)})")
    downsampler: nn.Module | None = None
    if stride != 1 and downsample_mode != "stride":
        if downsample_mode == "avg":
            downsampler = nn.AvgPool2d(stride, stride)
        elif downsample_mode == "max":
            downsampler = nn.MaxPool2d(stride, stride)
        else:
            downsampler = Downsample(stride, downsample_mode)
        stride = 1
    layers: list[nn.Module] = []
    amount = (kernel_size - 1) // 2
    if pad == "reflection" and amount > 0:
        layers.append(nn.ReflectionPad2d(amount))
        amount = 0
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=amount, bias=bias))
    if downsampler is not None:
        layers.append(downsampler)
    return nn.Sequential(*layers)
