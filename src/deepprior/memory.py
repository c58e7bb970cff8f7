"""How much memory a fit will need, known before it starts.

A DIP step keeps every layer's activations for the backward pass, so memory
grows with the canvas's pixel count: the paper's network needs about 7.5 KB
per pixel in fp32 on top of a fixed ~200 MB. The estimate runs the network
once on a small probe canvas, sums what its layers produce, scales that by
the pixel count, and adds the weights with their gradients and Adam state and
a fixed allowance for the framework's workspaces. It errs on the safe side:
measured peaks of a training step (``bench/speed.py --memory``, fp32) are
311 MiB at 128x128 and 682 MiB at 256x256, estimated 436 and 877 MiB; a
2048x2048 denoise in 512-pixel tiles peaked at 1.85 GiB (estimated 2.6 GiB
per tile).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["available_bytes", "estimate_fit_bytes", "format_bytes"]

# what the backward pass holds at its peak, per byte the layers output in the forward pass (measured
# about 1.0 for the paper's network between 128 and 256 pixels; rounded up), and a fixed allowance
BACKWARD_FACTOR = 1.2
WORKSPACE_BYTES = 256 * 2**20


def estimate_fit_bytes(net: nn.Module, in_channels: int, canvas: tuple[int, int], probe: int = 64) -> int:
    """Peak bytes of one training step of ``net`` on a ``canvas`` (height, width) input.

    >>> from deepprior.nets import build_net
    >>> net = build_net("skip", 8, 3, channels_down=[8, 8], channels_up=[8, 8], channels_skip=[2, 2])
    >>> small, large = estimate_fit_bytes(net, 8, (64, 64)), estimate_fit_bytes(net, 8, (128, 128))
    >>> small < large < 4 * small  # activations grow with the pixel count, on top of fixed costs
    True
    """
    produced = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal produced
        if isinstance(output, torch.Tensor):
            produced += output.numel() * output.element_size()

    multiple = getattr(net, "size_multiple", 1)
    side = max(probe, multiple, getattr(net, "min_size", 0)) // multiple * multiple
    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        device = next(net.parameters()).device
        with torch.no_grad():
            net(torch.zeros(1, in_channels, side, side, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    pixels = canvas[0] * canvas[1]
    activations = BACKWARD_FACTOR * produced * pixels / (side * side)
    parameters = sum(p.numel() * p.element_size() for p in net.parameters())
    # weights, gradients and Adam's two moments; the input and its perturbed copy; workspaces
    return int(activations + 4 * parameters + 2 * in_channels * pixels * 4 + WORKSPACE_BYTES)


def available_bytes(device: torch.device) -> int:
    """Memory free for a fit now: the GPU's free memory, or the system's available memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30  # unknown: assume a modest machine


def format_bytes(n: float) -> str:
    """``1536 * 2**20`` -> ``'1.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
