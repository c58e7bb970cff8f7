"""Fit on a random window of the canvas each step: can a large photo be denoised for the price of a crop?

A full-size fit needs several times the steps of a crop (F16 at 512x512: about 2900 against 700 at 128x128),
and each of its steps costs the whole canvas. The generator is convolutional, so each step can instead fit
the network to a random ``--window`` of the input noise and of the noisy image (offsets on the network's
32-pixel grid, so every window is computed exactly as inside the full canvas): a step then costs the window.
Every ``--every-full`` steps a full-size forward pass feeds the output average (its weight raised to keep the
same time span), which the Wiener stage takes as pilot. ``--window 0`` is the usual full-canvas fit, for
comparison. The photo is cropped to a multiple of 64 pixels. Prints, every 100 steps, the seconds, the
average's PSNR and the Wiener stage's.

    python bench/studies/random_crops.py --data ../shared/data --image 101087 --window 0 --steps 700
    python bench/studies/random_crops.py --data ../shared/data --image 101087 --window 192 --steps 1400
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import torch
import torch.nn.functional as F

from deepprior.engine import build_generator
from deepprior.imageio import from_tensor, to_tensor
from deepprior.presets import get_preset
from deepprior.refine import wiener_mix


def _starts(size: int, window: int) -> list[int]:
    step = max(32, window // 2 // 32 * 32)
    starts = list(range(0, size - window + 1, step))
    return starts if starts[-1] == size - window else [*starts, size - window]


def stitched(net: torch.nn.Module, z: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """The full-size output put together from half-overlapping windows, each computed as in the fit."""
    height, width = z.shape[-2:]
    total = weights = None
    for top in _starts(height, wh):
        for left in _starts(width, ww):
            out = net(z[..., top : top + wh, left : left + ww].contiguous(memory_format=torch.channels_last)).float()
            if total is None:
                total = torch.zeros(1, out.shape[1], height, width)
                weights = torch.zeros(1, 1, height, width)
            total[..., top : top + wh, left : left + ww] += out
            weights[..., top : top + wh, left : left + ww] += 1
    return total / weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--folder", default="tune/cbsd68")
    parser.add_argument("--image", default="101087")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--window", type=int, default=192, help="side of the window fitted each step (0: all)")
    parser.add_argument("--every-full", type=int, default=4, help="steps between full-size passes for the average")
    parser.add_argument("--steps", type=int, default=1400)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stitch", action="store_true",
                        help="make the full-size output from windows, as fitted, half overlapping")
    args = parser.parse_args()
    clean = harness.load_image(args.data, args.folder, args.image)
    height, width = clean.shape[0] // 64 * 64, clean.shape[1] // 64 * 64
    problem = harness.problem("denoise", clean[:height, :width], 0, sigma=args.sigma)
    noisy = to_tensor(problem.measurement).contiguous(memory_format=torch.channels_last)
    preset = get_preset("fast")
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    net, channels = build_generator(preset, noisy.shape[1])
    net = net.to(memory_format=torch.channels_last)
    z = (torch.rand(1, channels, height, width, generator=generator) * preset.input_scale).contiguous(
        memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr or preset.fit.lr, fused=True)
    window = args.window or max(height, width)
    every = args.every_full if args.window else 1
    weight = preset.fit.ema_weight ** every
    average, total = torch.zeros_like(noisy), 0.0
    start = time.perf_counter()

    def psnr(image: torch.Tensor) -> float:
        return round(harness.score("denoise", problem.clean, from_tensor(image.float().cpu()), 1)[0], 3)

    for step in range(1, args.steps + 1):
        wh, ww = min(window, height), min(window, width)
        top = 32 * int(torch.randint(0, (height - wh) // 32 + 1, (1,), generator=generator))
        left = 32 * int(torch.randint(0, (width - ww) // 32 + 1, (1,), generator=generator))
        z_part = z[..., top : top + wh, left : left + ww]
        z_part = z_part + preset.fit.reg_noise_std * torch.randn(z_part.shape, generator=generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(z_part.contiguous(memory_format=torch.channels_last))
        loss = F.mse_loss(out.float(), noisy[..., top : top + wh, left : left + ww])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0:
            if args.window:
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                    full = stitched(net, z, wh, ww) if args.stitch else net(z).float()
            else:
                full = out.detach().float()
            average = weight * average + (1 - weight) * full
            total = weight * total + (1 - weight)
        if step % 100 == 0:
            shown = average / total
            refined = wiener_mix(noisy.contiguous(), shown.contiguous(), problem.sigma).image
            print(step, round(time.perf_counter() - start, 1), psnr(shown), psnr(refined), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
