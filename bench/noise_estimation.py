"""Noise-level estimation on Set9: deepprior's estimate against scikit-image's.

    python bench/noise_estimation.py --data ../shared/data [--crop 128]

Gaussian noise clipped to [0, 1]; prints the estimates (0-255 scale) and the
worst relative error of each method, and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from image_seed_rows import SET9
from skimage.restoration import estimate_sigma as skimage_sigma

from deepprior.degrade import add_noise, center_crop
from deepprior.imageio import read_image
from deepprior.noise import estimate_sigma


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--crop", type=int, default=0, help="centre crop side (0: full images)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for sigma in args.sigmas:
        for name in SET9:
            clean = read_image(args.data / "set9" / f"{name}.png").pixels
            if args.crop:
                clean = center_crop(clean, args.crop, args.crop)
            noisy = add_noise(clean, sigma / 255, seed=0)
            ours = estimate_sigma(noisy) * 255
            theirs = float(np.mean(skimage_sigma(noisy, channel_axis=-1))) * 255
            rows.append({"image": name, "sigma": sigma, "deepprior": ours, "skimage": theirs})
            print(f"sigma {sigma:4.0f} {name:8s} deepprior {ours:6.2f}  skimage {theirs:6.2f}", flush=True)
    for method in ("deepprior", "skimage"):
        worst = max(abs(r[method] - r["sigma"]) / r["sigma"] for r in rows)
        print(f"{method}: worst relative error {100 * worst:.1f} %")
    out = args.out or Path(f"bench/results/noise_estimation_{args.crop or 'full'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
