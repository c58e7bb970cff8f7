"""Per pass of the denoising stage: what the Wiener mixture and each collaborative pass give after one fit.

    python bench/studies/stage_passes.py --data ../shared/data f16 101085 101087

For each image (``f16``: the 256x256 centre crop of set9's F16; any other name: the 128x128 centre crop of that
CBSD68 tuning photo) with Gaussian noise of sigma 25 (seed 0): the default fit with no stage (seed 0), then the
Wiener mixture and four collaborative passes one after another, each with its PSNR and the ratio of its residual
to the clipped noise variance. Prints one line per image. It showed that the default's three passes cost the F16
crop 0.33 dB (31.38 after the mixture, 31.05 after three passes) while the textured tuning photos gain.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch

from deepprior import api
from deepprior.blockmatch import collaborative_refine
from deepprior.noise import clipped_noise_variance, estimate_sigma
from deepprior.refine import wiener_mix


def study(data: Path, name: str) -> str:
    folder, crop = ("set9", 256) if name == "f16" else ("tune/cbsd68", 128)
    clean = harness.load_image(data, folder, name, crop=crop)
    noisy = harness.noisy(clean, 25, seed=0)
    _, result = api.denoise(noisy, seed=0, refine=False, return_result=True, progress=False)
    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].float()
    truth = torch.from_numpy(clean).permute(2, 0, 1)[None].float()
    sigma = estimate_sigma(noisy)

    def psnr(t: torch.Tensor) -> float:
        return float(10 * np.log10(1 / float(((t.clamp(0, 1) - truth) ** 2).mean())))

    def residual(t: torch.Tensor) -> float:
        return float(((y - t) ** 2).mean()) / clipped_noise_variance(t, sigma)

    estimate = wiener_mix(y, result.fitted.float(), sigma).image.float()
    parts = [f"{name}: fit {psnr(result.fitted.float()):.2f}", f"mixture {psnr(estimate):.2f} ({residual(estimate):.3f})"]
    for number in range(1, 5):
        estimate = collaborative_refine(y, estimate, sigma)
        parts.append(f"pass {number} {psnr(estimate):.2f} ({residual(estimate):.3f})")
    return " | ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    for name in args.images:
        print(study(args.data, name), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
