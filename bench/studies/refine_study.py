"""The Wiener stage, filter by filter: what each window size and colour transform gives, and the SURE mixture.

For each Set9 centre crop (Gaussian noise clipped to [0, 1], the same noisy
image as ``bench/quality.py`` makes with the same seed), this fits the
default ``fast`` recipe once (sigma estimated, stopped automatically, no
refinement) and then applies to that one pilot: every single Wiener filter
(windows of 6, 8 and 10 pixels, opponent and principal colour axes), their
plain average, and the SURE-weighted mixture the default uses. Results are
written after every image, and images already in ``--out`` are skipped, so
an interrupted run goes on where it stopped.

    python bench/studies/refine_study.py --data ../shared/data --crop 128
    python bench/studies/refine_study.py --data ../shared/data --crop 256 --images f16 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch

from deepprior.imageio import from_tensor, to_tensor
from deepprior.metrics import psnr
from deepprior.noise import estimate_sigma
from deepprior.refine import COLOUR_BASES, wiener_mix, wiener_refine

PATCHES = (6, 8, 10)


def study(clean: np.ndarray, noise_seed: int, net_seed: int, sigma_255: float) -> dict[str, float]:
    """PSNR of the fit and of every refinement of it, for one image and one network seed."""
    noisy = harness.noisy(clean, sigma_255, seed=noise_seed)
    sigma = estimate_sigma(noisy)
    y = to_tensor(noisy)
    result = harness.fit(y, None, "fast", seed=net_seed, sigma=sigma, refine=False)
    pilot = result.fitted.cpu()

    def score(image: torch.Tensor) -> float:
        return round(psnr(clean, from_tensor(image)), 4)

    row: dict[str, float] = {"steps": result.iterations_run, "fit": score(pilot)}
    singles = []
    for colour in COLOUR_BASES:
        for patch in PATCHES:
            image = wiener_refine(y, pilot, sigma, patch=patch, colour=colour)
            singles.append(image)
            row[f"{colour} {patch}"] = score(image)
    row["average of six"] = score(sum(singles) / len(singles))
    mix = wiener_mix(y, pilot, sigma, patches=PATCHES)
    row["SURE mixture"] = score(mix.image)
    row["weights"] = {k: w for k, w in mix.weights.items() if w > 0}  # type: ignore[assignment]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0, help="the noise's seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the network's seeds")
    parser.add_argument("--images", nargs="+", default=harness.SET9)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(f"bench/results/refine_study_{args.crop}.json")
    rows = harness.collect_rows(args, out, lambda clean, net_seed: study(clean, args.seed, net_seed, args.sigma),
                                lambda r: f"{r['image']} seed {r['net_seed']}: fit {r['fit']:.2f}, opponent 8 "
                                f"{r['opponent 8']:.2f}, principal 8 {r['principal 8']:.2f}, "
                                f"mixture {r['SURE mixture']:.2f} ({r['steps']} steps)")
    columns = ["fit"] + [f"{c} {p}" for c in COLOUR_BASES for p in PATCHES] + ["average of six", "SURE mixture"]
    lines = ["| image | seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['net_seed']} | " + " | ".join(f"{r[c]:.2f}" for c in columns) + " |")
    lines.append("| **mean** | | " + " | ".join(f"{np.mean([r[c] for r in rows]):.3f}" for c in columns) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
