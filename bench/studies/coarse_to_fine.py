"""Coarse-to-fine denoising: fit a half-size canvas first, then the full one from the same weights.

A step on a half-size canvas costs a quarter of a full one, so if a network fitted there (to the noisy image
averaged over 2x2 pixels) started the full-size fit well, a large photo would be denoised in fewer full-size
steps. This study fits ``fast`` for ``--coarse`` steps at half size, upsamples its input noise to full size
(bilinear, or ``--input fresh`` for new noise) and goes on at full size, printing the PSNR of the averaged
output and of the Wiener stage every 100 full-size steps; ``--coarse 0`` is the usual cold start to compare
with. The photo is cropped to a multiple of 64 pixels, so both canvases fit the network.

    python bench/studies/coarse_to_fine.py --data ../shared/data --image 101087 --coarse 0 --steps 700
    python bench/studies/coarse_to_fine.py --data ../shared/data --image 101087 --coarse 800 --steps 600
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import torch
import torch.nn.functional as F

from deepprior.engine import build_generator
from deepprior.fitting.loop import fit
from deepprior.imageio import from_tensor, to_tensor
from deepprior.presets import get_preset
from deepprior.refine import wiener_mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--image", default="101087", help="a CBSD68 photo")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--coarse", type=int, default=800, help="steps at half size first (0: none)")
    parser.add_argument("--steps", type=int, default=600, help="steps at full size")
    parser.add_argument("--input", choices=["bilinear", "nearest", "fresh"], default="bilinear")
    args = parser.parse_args()
    clean = harness.load_image(args.data, "tune/cbsd68", args.image)
    height, width = clean.shape[0] // 64 * 64, clean.shape[1] // 64 * 64
    problem = harness.problem("denoise", clean[:height, :width], 0, sigma=args.sigma)
    noisy = to_tensor(problem.measurement)
    preset = get_preset("fast")
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    net, channels = build_generator(preset, noisy.shape[1])
    start = time.perf_counter()

    def psnr(image: torch.Tensor) -> float:
        return round(harness.score("denoise", problem.clean, from_tensor(image.float().cpu()), 1)[0], 3)

    def report(state) -> None:
        if state.iteration % 100 == 0:
            shown = (state.average if state.average is not None else state.output).float()
            refined = wiener_mix(noisy, shown, problem.sigma).image
            print(args.coarse + state.iteration, round(time.perf_counter() - start, 1), psnr(shown), psnr(refined),
                  flush=True)

    z = torch.rand(1, channels, height, width, generator=generator) * preset.input_scale
    if args.coarse:
        coarse_z = torch.rand(1, channels, height // 2, width // 2, generator=generator) * preset.input_scale
        fit(net, coarse_z, F.avg_pool2d(noisy, 2), config=replace(preset.fit, iterations=args.coarse),
            generator=generator, precision="bf16", channels_last=True)
        print("half size done", round(time.perf_counter() - start, 1), flush=True)
        if args.input != "fresh":
            z = F.interpolate(coarse_z, scale_factor=2, mode=args.input).contiguous()
    fit(net, z, noisy, config=replace(preset.fit, iterations=args.steps), generator=generator, precision="bf16",
        channels_last=True, callbacks=[report])
    return 0


if __name__ == "__main__":
    sys.exit(main())
