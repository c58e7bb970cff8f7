"""The U-Net generator of the paper's architecture comparison."""
from __future__ import annotations

import torch
from torch import nn

from deepprior.nets.layers import conv, norm

__all__ = ["UNet", "unet"]


def _double_conv(cin: int, cout: int, norm_layer: str, bias: bool, pad: str) -> nn.Sequential:
    """[3x3 convolution, normalisation, ReLU] twice."""
    return nn.Sequential(
        conv(cin, cout, 3, bias=bias, pad=pad),
        norm(cout, norm_layer),
        nn.ReLU(),
        conv(cout, cout, 3, bias=bias, pad=pad),
        norm(cout, norm_layer),
        nn.ReLU(),
    )


def _center_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top = (x.shape[2] - h) // 2
    left = (x.shape[3] - w) // 2
    return x[:, :, top : top + h, left : left + w]


class _Up(nn.Module):
    """Upsample by 2, concatenate the encoder features, fuse (no normalisation)."""

    def __init__(self, channels: int, mode: str, bias: bool, pad: str) -> None:
        super().__init__()
        if mode == "deconv":
            self.up: nn.Module = nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1)
        elif mode in ("nearest", "bilinear"):
            align = False if mode == "bilinear" else None
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode=mode, align_corners=align),
                conv(2 * channels, channels, 3, bias=bias, pad=pad),
            )
        else:
            raise ValueError(f"unknown upsample mode {mode!r} (use deconv, nearest or bilinear)")
        self.fuse = _double_conv(2 * channels, channels, "none", bias, pad)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(coarse)
        return self.fuse(torch.cat([up, _center_crop(skip, up.shape[2], up.shape[3])], dim=1))


class UNet(nn.Module):
    """Four max-pool downsamplings and four upsamplings with concatenated skips.

    Widths are ``[64, 128, 256, 512, 1024] // feature_scale``; the encoder
    blocks are normalised, the decoder blocks are not, ReLU throughout, as in
    the original ``UNet``.
    """

    depth = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        feature_scale: int = 4,
        upsample_mode: str = "deconv",
        pad: str = "zero",
        norm_layer: str = "instance",
        need_sigmoid: bool = True,
        need_bias: bool = True,
    ) -> None:
        super().__init__()
        widths = [w // feature_scale for w in (64, 128, 256, 512, 1024)]
        self.start = _double_conv(in_channels, widths[0], norm_layer, need_bias, pad)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(widths[i], widths[i + 1], norm_layer, need_bias, pad))
            for i in range(4)
        )
        self.ups = nn.ModuleList(_Up(widths[i], upsample_mode, need_bias, pad) for i in reversed(range(4)))
        final: list[nn.Module] = [conv(widths[0], out_channels, 1, bias=need_bias, pad=pad)]
        if need_sigmoid:
            final.append(nn.Sigmoid())
        self.final = nn.Sequential(*final)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.start(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        y = features.pop()
        for up in self.ups:
            y = up(y, features.pop())
        return self.final(y)


def unet(in_channels: int, out_channels: int, **options: object) -> UNet:
    """Build a :class:`UNet` (the builder function, like :func:`skip`).

    >>> net = unet(32, 3, feature_scale=4, upsample_mode="bilinear", norm_layer="batch")
    >>> net(torch.rand(1, 32, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
    """
    return UNet(in_channels, out_channels, **options)  # type: ignore[arg-type]
