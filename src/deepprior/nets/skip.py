"""The Deep Image Prior encoder-decoder with skip connections ("hourglass").

A faithful re-implementation of ``skip()`` from the original code: same
layers, same order, same parameter count (2,217,831 for the paper's
denoising / super-resolution network).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from torch import nn

from deepprior.nets.layers import Concat, activation, conv, norm

__all__ = ["skip"]

T = TypeVar("T")


def _per_scale(value: T | Sequence[T], n_scales: int, name: str) -> list[T]:
    if isinstance(value, (list, tuple)):
        if len(value) != n_scales:
            raise ValueError(f"{name} has {len(value)} entries, expected one per scale ({n_scales})")
        return list(value)
    return [value] * n_scales  # type: ignore[list-item]


def skip(
    in_channels: int = 32,
    out_channels: int = 3,
    *,
    channels_down: Sequence[int] = (128, 128, 128, 128, 128),
    channels_up: Sequence[int] = (128, 128, 128, 128, 128),
    channels_skip: Sequence[int] = (4, 4, 4, 4, 4),
    filter_size_down: int | Sequence[int] = 3,
    filter_size_up: int | Sequence[int] = 3,
    filter_size_skip: int = 1,
    downsample_mode: str | Sequence[str] = "stride",
    upsample_mode: str | Sequence[str] = "bilinear",
    pad: str = "reflection",
    act: str = "LeakyReLU",
    norm_layer: str = "batch",
    need_1x1_up: bool = True,
    need_sigmoid: bool = True,
    need_bias: bool = True,
) -> nn.Sequential:
    """Build the encoder-decoder generator of Deep Image Prior.

    Each scale ``i`` halves the resolution with a strided (or pooled)
    convolution, applies a second convolution, recurses into the next scale,
    upsamples by 2, concatenates a ``channels_skip[i]``-channel skip branch,
    and fuses with a convolution (plus an optional 1x1 convolution). Every
    convolution is followed by normalisation and the activation.

    Parameters
    ----------
    in_channels, out_channels : channels of the network input and output.
    channels_down, channels_up, channels_skip : widths per scale, coarse last;
        their length is the number of scales (the depth). A zero skip width
        removes that skip connection.
    filter_size_down, filter_size_up : kernel sizes, one or one per scale.
    filter_size_skip : kernel size of the skip branches.
    downsample_mode : ``stride``, ``avg``, ``max``, ``lanczos2`` or ``lanczos3``.
    upsample_mode : ``nearest`` or ``bilinear``, one or one per scale.
    pad : ``reflection`` or ``zero``.
    act : activation name (see :func:`deepprior.nets.layers.activation`).
    norm_layer : ``batch`` (the paper's), ``instance`` or ``none``.
    need_1x1_up : add a 1x1 convolution after each fusion, as the paper does.
    need_sigmoid : squash the output into (0, 1).

    Examples
    --------
    >>> net = skip(32, 3)
    >>> sum(p.numel() for p in net.parameters())
    2217831
    """
    n_scales = len(channels_down)
    if not (len(channels_up) == len(channels_skip) == n_scales) or n_scales < 1:
        raise ValueError("channels_down, channels_up and channels_skip need the same, non-zero length")
    up_modes = _per_scale(upsample_mode, n_scales, "upsample_mode")
    down_modes = _per_scale(downsample_mode, n_scales, "downsample_mode")
    sizes_down = _per_scale(filter_size_down, n_scales, "filter_size_down")
    sizes_up = _per_scale(filter_size_up, n_scales, "filter_size_up")
    for mode in up_modes:
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"unknown upsample mode {mode!r} (use nearest or bilinear)")

    def block(cin: int, cout: int, k: int, stride: int = 1, down: str = "stride") -> list[nn.Module]:
        return [
            conv(cin, cout, k, stride, bias=need_bias, pad=pad, downsample_mode=down),
            norm(cout, norm_layer),
            activation(act),
        ]

    model = nn.Sequential()
    current = model
    depth_in = in_channels
    last = n_scales - 1
    for i in range(n_scales):
        deeper = nn.Sequential()
        if channels_skip[i]:
            skip_branch = nn.Sequential(*block(depth_in, channels_skip[i], filter_size_skip))
            current.append(Concat(skip_branch, deeper))
        else:
            current.append(deeper)
        fused = channels_skip[i] + (channels_up[i + 1] if i < last else channels_down[i])
        current.append(norm(fused, norm_layer))

        for layer in block(depth_in, channels_down[i], sizes_down[i], 2, down_modes[i]):
            deeper.append(layer)
        for layer in block(channels_down[i], channels_down[i], sizes_down[i]):
            deeper.append(layer)
        deeper_main = nn.Sequential()
        if i < last:
            deeper.append(deeper_main)
        align = False if up_modes[i] == "bilinear" else None
        deeper.append(nn.Upsample(scale_factor=2, mode=up_modes[i], align_corners=align))

        for layer in block(fused, channels_up[i], sizes_up[i]):
            current.append(layer)
        if need_1x1_up:
            for layer in block(channels_up[i], channels_up[i], 1):
                current.append(layer)
        depth_in = channels_down[i]
        current = deeper_main

    model.append(conv(channels_up[0], out_channels, 1, bias=need_bias, pad=pad))
    if need_sigmoid:
        model.append(nn.Sigmoid())
    return model
