"""Generators: convolutional networks whose structure is the image prior.

:func:`build_net` builds any of them by name and wraps it in a
:class:`Generator`, which knows the input it takes and the size multiple
its output needs, so the fitting code never special-cases an architecture.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepprior.nets.deep_decoder import deep_decoder
from deepprior.nets.inputs import INPUT_KINDS, meshgrid_input, noise_input
from deepprior.nets.resnet import resnet
from deepprior.nets.skip import skip
from deepprior.nets.unet import unet

__all__ = [
    "INPUT_KINDS",
    "NET_KINDS",
    "Generator",
    "build_net",
    "count_parameters",
    "deep_decoder",
    "meshgrid_input",
    "noise_input",
    "resnet",
    "skip",
    "unet",
]

NET_KINDS = ("skip", "unet", "resnet", "deep_decoder")


class Generator(nn.Module):
    """A generator network together with the geometry of its input and output.

    Attributes
    ----------
    body : the network itself.
    size_multiple : output height and width must be multiples of this.
    input_downscale : the input is this many times smaller than the output
        (1 for the encoder-decoders; ``2 ** (layers - 1)`` for the Deep Decoder).
    in_channels : channels of the input.
    min_size : smallest output side it can make: its coarsest scale needs
        more than one pixel for batch norm, and more than the padding of its
        widest filter for reflection padding.
    """

    def __init__(
        self, body: nn.Module, *, in_channels: int, size_multiple: int, input_downscale: int = 1, min_size: int = 0
    ) -> None:
        super().__init__()
        self.body = body
        self.in_channels = in_channels
        self.size_multiple = size_multiple
        self.input_downscale = input_downscale
        self.min_size = max(min_size, 2 * size_multiple)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters.

    >>> count_parameters(nn.Conv2d(1, 2, 3))
    20
    """
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def build_net(kind: str, in_channels: int, out_channels: int, **options: Any) -> Generator:
    """Build the generator ``kind`` (one of :data:`NET_KINDS`) with ``options``
    passed to its builder (:func:`skip`, :func:`unet`, :func:`resnet`,
    :func:`deep_decoder`).

    >>> count_parameters(build_net("skip", 32, 3))
    2217831
    """
    if kind == "skip":
        body = skip(in_channels, out_channels, **options)
        depth = len(options.get("channels_down", (0,) * 5))
        filters = [options.get(key, 3) for key in ("filter_size_down", "filter_size_up")]
        widest = max(max(f) if isinstance(f, (list, tuple)) else f for f in filters)
        coarsest = max(2, widest // 2 + 1)
        return Generator(body, in_channels=in_channels, size_multiple=2**depth, min_size=coarsest * 2**depth)
    if kind == "unet":
        body = unet(in_channels, out_channels, **options)
        return Generator(body, in_channels=in_channels, size_multiple=2 ** body.depth)
    if kind == "resnet":
        body = resnet(in_channels, out_channels, **options)
        return Generator(body, in_channels=in_channels, size_multiple=1)
    if kind == "deep_decoder":
        channels = options.get("channels", 64)
        layers = options.get("layers", 6)
        body = deep_decoder(out_channels, **options)
        if in_channels != channels:
            raise ValueError(f"a deep decoder takes {channels} input channels, got {in_channels}")
        scale = 2 ** (layers - 1)
        return Generator(body, in_channels=channels, size_multiple=scale, input_downscale=scale)
    raise ValueError(f"unknown network {kind!r} (use {', '.join(NET_KINDS)})")
