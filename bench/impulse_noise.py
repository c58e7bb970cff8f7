"""Salt-and-pepper noise: the default denoiser against the median filters, on CBSD68 crops.

    python bench/impulse_noise.py --data ../shared/data
    python bench/impulse_noise.py --data ../shared/data --summary

The first 10 CBSD68 photos by name, centre crops (128x128 by default), each with 20 % and 50 % of its values
(each channel on its own) replaced by black or white (``deepprior degrade --impulse``, seed 0). Per input, in
one run: the noisy PSNR; a 3x3 median filter; the adaptive median filter (Hwang and Haddad 1995: the window
grows from 3x3 to 7x7 until its median is not black or white, and only black or white values are replaced);
and ``deepprior denoise noisy.png -o out.png`` with no option (``--noise auto``), run as a child process and
timed from start to written file, with the noise model it detected. PSNR on all channels. A row is written as
soon as an input is done; finished inputs are skipped on a rerun.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
from scipy.ndimage import median_filter

from deepprior.degrade import add_impulse
from deepprior.imageio import write_image

FRACTIONS = (0.2, 0.5)


def median3(noisy: np.ndarray) -> np.ndarray:
    """The 3x3 median of each channel."""
    return median_filter(noisy, size=(3, 3, 1), mode="reflect")


def adaptive_median(noisy: np.ndarray, largest: int = 7) -> np.ndarray:
    """Each black or white value replaced by the median of the smallest window (3x3 up to ``largest``) whose
    median is neither; where none is, by the largest window's median. Other values are kept."""
    extreme = (noisy <= 0.5 / 255) | (noisy >= 1 - 0.5 / 255)
    out = noisy.copy()
    todo = extreme.copy()
    for size in range(3, largest + 1, 2):
        median = median_filter(noisy, size=(size, size, 1), mode="reflect")
        usable = todo & (median > 0.5 / 255) & (median < 1 - 0.5 / 255)
        if size == largest:
            usable = todo
        out[usable] = median[usable]
        todo &= ~usable
    return out


def measure(clean: np.ndarray, name: str, fraction: float, crop: int) -> dict[str, Any]:
    noisy = add_impulse(clean, fraction, seed=0)

    def scored(estimate: np.ndarray, start: float) -> dict[str, Any]:
        return {"psnr": round(harness.score("denoise", clean, estimate, 1)[0], 4),
                "seconds": round(time.perf_counter() - start, 2)}

    row: dict[str, Any] = {"image": name, "crop": crop, "fraction": fraction,
                           "noisy": round(harness.score("denoise", clean, noisy, 1)[0], 4)}
    start = time.perf_counter()
    row["baselines"] = {"median 3x3": scored(median3(noisy), start)}
    start = time.perf_counter()
    row["baselines"]["adaptive median"] = scored(adaptive_median(noisy), start)
    with tempfile.TemporaryDirectory(prefix="deepprior-impulse-") as tmp:
        source = Path(tmp) / "noisy.png"
        write_image(source, noisy)
        seconds, output, record = harness.cli_denoise(source, Path(tmp))
    row["default"] = {"psnr": round(harness.score("denoise", clean, output, 1)[0], 4), "seconds": round(seconds, 1),
                      "steps": record["iterations_run"], "stop_reason": record["stop_reason"],
                      "preset": record["preset"], "noise": record["noise"]}
    return row


def summary(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for fraction in FRACTIONS:
        chosen = [r for r in rows if r["fraction"] == fraction]
        if not chosen:
            continue
        methods = sorted({m for r in chosen for m in r["baselines"]})
        head = ["image", "noisy", *methods, "deepprior", "time (s)", "noise model found"]
        lines += [f"### salt-and-pepper, {fraction:.0%} of the values", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for r in chosen:
            d = r["default"]
            found = d["noise"]["model"] + (f" ({d['noise']['fraction']:.1%})" if "fraction" in d["noise"] else "")
            cells = [r["image"], f"{r['noisy']:.2f}", *(f"{r['baselines'][m]['psnr']:.2f}" for m in methods),
                     f"{d['psnr']:.2f}", f"{d['seconds']:.0f}", found]
            lines.append("| " + " | ".join(cells) + " |")
        means = [f"{np.mean([r['noisy'] for r in chosen]):.2f}",
                 *(f"**{np.mean([r['baselines'][m]['psnr'] for r in chosen]):.2f}**" for m in methods),
                 f"**{np.mean([r['default']['psnr'] for r in chosen]):.2f}**", "", ""]
        lines += ["| **mean** | " + " | ".join(means) + " |", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the shared data folder (holds tune/cbsd68)")
    parser.add_argument("--images", type=int, default=10, help="how many CBSD68 photos, by name (default 10)")
    parser.add_argument("--crop", type=int, default=128, help="centre crop size (default 128)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/impulse_noise.json"))
    parser.add_argument("--summary", action="store_true", help="print the recorded tables and exit")
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "crop", "fraction"), fields={"machine": harness.machine()})
    if not args.summary:
        if args.data is None:
            parser.error("--data is needed to measure")
        names = sorted(p.stem for p in (args.data / "tune" / "cbsd68").glob("*.png"))[: args.images]
        for name in names:
            clean = harness.load_image(args.data, "tune/cbsd68", name, crop=args.crop)
            for fraction in FRACTIONS:
                if results.done(name, args.crop, fraction):
                    continue
                row = measure(clean, name, fraction, args.crop)
                results.add(row)
                print(name, fraction, f"noisy {row['noisy']:.2f}",
                      *(f"{m} {b['psnr']:.2f}" for m, b in row["baselines"].items()),
                      f"deepprior {row['default']['psnr']:.2f} in {row['default']['seconds']:.0f} s", flush=True)
    print("\n".join(summary([r for r in results.rows if r["crop"] == args.crop])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
