"""The Deep Decoder (Heckel and Hand, ICLR 2019).

An under-parameterised generator made only of 1x1 convolutions, bilinear
upsampling, ReLU and channel normalisation. With fewer weights than pixels it
cannot fit noise, so it needs no early stopping.
"""
from __future__ import annotations

from torch import nn

__all__ = ["deep_decoder"]


def deep_decoder(
    out_channels: int = 3,
    *,
    channels: int = 64,
    layers: int = 6,
    upsample_mode: str = "bilinear",
    need_sigmoid: bool = True,
) -> nn.Sequential:
    """Build a Deep Decoder with ``layers`` blocks of ``channels`` channels.

    Each block is 1x1 convolution, upsampling by 2 (all but the last block),
    ReLU and channel normalisation (batch norm without affine parameters on a
    single image normalises each channel over space, as in the paper). A final
    1x1 convolution maps to ``out_channels``. Its input is a fixed random
    tensor at ``1 / 2 ** (layers - 1)`` of the output resolution.

    Examples
    --------
    >>> net = deep_decoder(3, channels=64, layers=6)
    >>> sum(p.numel() for p in net.parameters())
    24768
    """
    if layers < 1:
        raise ValueError(f"a deep decoder needs at least one layer, got {layers}")
    model = nn.Sequential()
    for i in range(layers):
        model.append(nn.Conv2d(channels, channels, 1, bias=False))
        if i < layers - 1:
            align = False if upsample_mode == "bilinear" else None
            model.append(nn.Upsample(scale_factor=2, mode=upsample_mode, align_corners=align))
        model.append(nn.ReLU())
        model.append(nn.BatchNorm2d(channels, affine=False))
    model.append(nn.Conv2d(channels, out_channels, 1, bias=False))
    if need_sigmoid:
        model.append(nn.Sigmoid())
    return model
