"""Noise-level estimation on Set9: deepprior's estimate against scikit-image's.

    python bench/noise_estimation.py --data ../shared/data [--crop 128]

Gaussian noise clipped to [0, 1] (seed 0: the same noisy images as the other
benchmarks); prints the estimates (0-255 scale) and the worst relative error
of each method, and writes JSON (a list of rows). Resumable: (image, sigma)
pairs already in ``--out`` are not estimated again.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import harness
import numpy as np
from skimage.restoration import estimate_sigma as skimage_sigma

from deepprior.noise import estimate_sigma


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--crop", type=int, default=0, help="centre crop side (0: full images)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(f"bench/results/noise_estimation_{args.crop or 'full'}.json")
    results = harness.Results(out, key=("image", "sigma"), rows=None)
    for sigma in args.sigmas:
        todo = [name for name in harness.SET9 if not results.done(name, sigma)]
        for name, clean in harness.images(args.data, "set9", todo, crop=args.crop):
            noisy = harness.noisy(clean, sigma, seed=0)
            ours = estimate_sigma(noisy) * 255
            theirs = float(np.mean(skimage_sigma(noisy, channel_axis=-1))) * 255
            results.add({"image": name, "sigma": sigma, "deepprior": ours, "skimage": theirs})
            print(f"sigma {sigma:4.0f} {name:8s} deepprior {ours:6.2f}  skimage {theirs:6.2f}", flush=True)
    rows = [r for r in results.rows if r["sigma"] in args.sigmas]
    for method in ("deepprior", "skimage"):
        worst = max(abs(r[method] - r["sigma"]) / r["sigma"] for r in rows)
        print(f"{method}: worst relative error {100 * worst:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
