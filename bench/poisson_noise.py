"""Poisson (photon-count) noise: deepprior with ``--noise poisson`` against Anscombe + CBM3D, on CBSD68 crops.

    python bench/poisson_noise.py --data ../shared/data
    python bench/poisson_noise.py --data ../shared/data --summary

The first 10 CBSD68 photos by name, centre crops (128x128 by default), each with Poisson noise of peak 10 and
30 (``deepprior degrade --poisson PEAK``, seed 0: a white pixel counts PEAK photons on average). Per input, in
one run: the noisy PSNR; the classical recipe, the generalised Anscombe transform, CBM3D at the transformed
image's unit noise level, and the exact unbiased inverse (the same transform and inverse deepprior uses,
:mod:`deepprior.stabilise`); ``deepprior denoise noisy.png -o out.png --noise poisson --peak PEAK`` run as a child
process and timed from start to written file; and the command with no option (``--noise auto``), to show what
it takes the noise for. PSNR on all channels. A row is written as soon as an input is done; finished inputs are
skipped on a rerun.
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

from deepprior.degrade import add_poisson
from deepprior.imageio import write_image
from deepprior.stabilise import Anscombe

PEAKS = (10.0, 30.0)


def anscombe_cbm3d(noisy: np.ndarray, peak: float) -> np.ndarray:
    """Generalised Anscombe transform, CBM3D at the stabilised level, exact unbiased inverse."""
    import bm3d

    vst = Anscombe(peak)
    return vst.inverse(bm3d.bm3d_rgb(vst.forward(noisy), vst.sigma))


def measure(clean: np.ndarray, name: str, peak: float, crop: int) -> dict[str, Any]:
    noisy = add_poisson(clean, peak, seed=0)
    row: dict[str, Any] = {"image": name, "crop": crop, "peak": peak,
                           "noisy": round(harness.score("denoise", clean, noisy, 1)[0], 4)}
    start = time.perf_counter()
    estimate = anscombe_cbm3d(noisy, peak)
    row["baselines"] = {"Anscombe + CBM3D": {"psnr": round(harness.score("denoise", clean, estimate, 1)[0], 4),
                                             "seconds": round(time.perf_counter() - start, 2)}}
    with tempfile.TemporaryDirectory(prefix="deepprior-poisson-") as tmp:
        source = Path(tmp) / "noisy.png"
        write_image(source, noisy)
        for key, options in (("poisson", ("--noise", "poisson", "--peak", f"{peak:g}")), ("auto", ())):
            seconds, output, record = harness.cli_denoise(source, Path(tmp), *options)
            row[key] = {"psnr": round(harness.score("denoise", clean, output, 1)[0], 4), "seconds": round(seconds, 1),
                        "steps": record["iterations_run"], "stop_reason": record["stop_reason"],
                        "preset": record["preset"], "noise": record["noise"]}
    return row


def summary(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for peak in PEAKS:
        chosen = [r for r in rows if r["peak"] == peak]
        if not chosen:
            continue
        head = ["image", "noisy", "Anscombe + CBM3D", "deepprior --noise poisson", "time (s)", "deepprior, auto",
                "auto took it for"]
        lines += [f"### Poisson noise, peak {peak:g}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in chosen:
            noise = r["auto"]["noise"]
            found = noise["model"] + (f" sigma {noise['sigma_255']:.1f}" if "sigma_255" in noise else "")
            cells = [r["image"], f"{r['noisy']:.2f}", f"{r['baselines']['Anscombe + CBM3D']['psnr']:.2f}",
                     f"{r['poisson']['psnr']:.2f}", f"{r['poisson']['seconds']:.0f}", f"{r['auto']['psnr']:.2f}", found]
            lines.append("| " + " | ".join(cells) + " |")
        means = [f"{np.mean([r['noisy'] for r in chosen]):.2f}",
                 f"**{np.mean([r['baselines']['Anscombe + CBM3D']['psnr'] for r in chosen]):.2f}**",
                 f"**{np.mean([r['poisson']['psnr'] for r in chosen]):.2f}**", "",
                 f"**{np.mean([r['auto']['psnr'] for r in chosen]):.2f}**", ""]
        lines += ["| **mean** | " + " | ".join(means) + " |", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the shared data folder (holds tune/cbsd68)")
    parser.add_argument("--images", type=int, default=10, help="how many CBSD68 photos, by name (default 10)")
    parser.add_argument("--crop", type=int, default=128, help="centre crop size (default 128)")
    parser.add_argument("--peaks", type=float, nargs="+", default=list(PEAKS), help="peak counts (default 10 30)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/poisson_noise.json"))
    parser.add_argument("--summary", action="store_true", help="print the recorded tables and exit")
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "crop", "peak"), fields={"machine": harness.machine()})
    if not args.summary:
        if args.data is None:
            parser.error("--data is needed to measure")
        names = sorted(p.stem for p in (args.data / "tune" / "cbsd68").glob("*.png"))[: args.images]
        for name in names:
            clean = harness.load_image(args.data, "tune/cbsd68", name, crop=args.crop)
            for peak in args.peaks:
                if results.done(name, args.crop, peak):
                    continue
                row = measure(clean, name, peak, args.crop)
                results.add(row)
                print(name, peak, f"noisy {row['noisy']:.2f}",
                      *(f"{m} {b['psnr']:.2f}" for m, b in row["baselines"].items()),
                      f"deepprior {row['poisson']['psnr']:.2f} in {row['poisson']['seconds']:.0f} s, "
                      f"auto {row['auto']['psnr']:.2f}", flush=True)
    print("\n".join(summary([r for r in results.rows if r["crop"] == args.crop])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
