"""How ``--noise auto`` tells salt-and-pepper noise from Gaussian noise and clean photos.

For CBSD68 tuning photos, clean, with Gaussian noise (sigma 15 to 75 of 255) and with salt-and-pepper noise (2 %
to 70 % of the values), prints :func:`deepprior.impulse.standing_out`: the share of values that are black or white,
the share of those that stand out from their neighbourhood, and the share of the other values that stand out;
``*`` marks what :func:`deepprior.impulse.looks_like_salt_and_pepper` takes for salt-and-pepper. It chose
``IMPULSE_MIN_SHARE`` and ``IMPULSE_MAX_OTHERS``.

    python bench/studies/impulse_detection.py --data ../shared/data
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness

from deepprior.degrade import add_impulse, add_noise
from deepprior.impulse import looks_like_salt_and_pepper, standing_out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", default="101085,101087,102061,103070,105025,106024")
    args = parser.parse_args()
    print("image   input: black-or-white share / of those standing out / others standing out (* = taken for "
          "salt-and-pepper)")
    for name in args.images.split(","):
        clean = harness.load_image(args.data, "tune/cbsd68", name)
        inputs = {"clean": clean}
        inputs.update({f"gaussian {s}": add_noise(clean, s / 255, seed=0) for s in (15, 25, 30, 35, 40, 50, 75)})
        inputs.update({f"s&p {f:.0%}": add_impulse(clean, f, seed=0) for f in (0.02, 0.2, 0.5, 0.7)})
        cells = []
        for label, pixels in inputs.items():
            share, of_extremes, of_others = standing_out(pixels)
            mark = "*" if looks_like_salt_and_pepper(pixels) is not None else ""
            cells.append(f"{label}: {share:.3f}/{of_extremes:.2f}/{of_others:.3f}{mark}")
        print(name, " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
