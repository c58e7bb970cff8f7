"""Which fit length and which white-noise level make the default stage work on real camera noise?

    python bench/studies/real_noise_recipe.py --data ../shared/data [--step 4] [--steps 300 600 1000 1500]

Real camera noise in a JPEG (PolyU) is correlated and mostly quantised away inside flat 8x8 blocks: white-noise
estimators read 0-0.7 of 255 on it, while the best white level for CBM3D is 12-25 (``real_noise_probe.py``). The
stage needs a shrinkage level; the fit needs a length. On the PolyU *tuning* pairs (those ``bench/real_noise.py``
does not report, every ``--step``-th), centre 256x256 crops as that benchmark makes them, this runs the ``fast``
network for the longest of ``--steps`` with no stop (seed 0), keeps its average at each of ``--steps``, and
gives each to the denoising stage (Wiener mixture, then three collaborative passes; the mixture's share
0 and 0.5) at each white level of ``LEVELS``. The same stage with the noisy image as its own pilot (no network)
is the row ``0``. Rows (PSNR against the mean image) go to ``bench/results/real_noise_recipe.json`` as pairs
finish; ``--summary`` prints the mean per (steps, level, share).

``--harm`` asks the other question: what the same stage at each level does to a *clean* JPEG (the mean image
of each tuning pair, its own pilot, no network), as PSNR against itself, to ``real_noise_recipe_harm.json``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import real_noise
import torch

from deepprior import api
from deepprior.blockmatch import collaborative_refine
from deepprior.fitting import IterationState
from deepprior.refine import wiener_mix

LEVELS = (8, 12, 16, 20, 25)
SHARES = (0.0, 0.5)
PASSES = 3


def stage(y: torch.Tensor, pilot: torch.Tensor, sigma: float) -> dict[float, torch.Tensor]:
    """The stage's output per mixture share."""
    mixture = wiener_mix(y, pilot, sigma).image.float()
    refined = mixture
    for _ in range(PASSES):
        refined = collaborative_refine(y, refined, sigma)
    return {share: share * mixture + (1 - share) * refined for share in SHARES}


def tuning_pairs(data: Path, step: int) -> list[str]:
    """The PolyU pairs the benchmark does not report (index not a multiple of 4), every ``step``-th."""
    names = real_noise.pairs(data, 1, 10_000)
    return [n for i, n in enumerate(names) if i % 4][::step]


def measure(data: Path, name: str, checkpoints: list[int]) -> dict:
    with tempfile.TemporaryDirectory(prefix="deepprior-real-") as tmp:
        _, noisy, clean = real_noise.crop_pair(data, name, 256, Path(tmp))
    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].float()
    truth = torch.from_numpy(clean).permute(2, 0, 1)[None].float()

    def psnr(t: torch.Tensor) -> float:
        return round(float(10 * np.log10(1 / float(((t.clamp(0, 1) - truth) ** 2).mean()))), 3)

    snapshots: dict[int, torch.Tensor] = {0: y}

    def keep(state: IterationState) -> None:
        if state.iteration + 1 in checkpoints:
            snapshots[state.iteration + 1] = (state.average if state.average is not None else state.output).float()

    start = time.perf_counter()
    api.restore(noisy, None, preset="fast", sigma=0.01, iterations=max(checkpoints), stop="fixed", refine=False,
                seed=0, progress=False, callbacks=[keep])
    fit_seconds = time.perf_counter() - start
    grid = {}
    for steps, pilot in snapshots.items():
        grid[f"{steps} fit"] = psnr(pilot)
        for level in LEVELS:
            for share, out in stage(y, pilot, level / 255).items():
                grid[f"{steps} {level} {share}"] = psnr(out)
    return {"image": name, "noisy": psnr(y), "fit_seconds": round(fit_seconds, 1), "psnr": grid}


def harm(data: Path, name: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="deepprior-real-") as tmp:
        _, _, clean = real_noise.crop_pair(data, name, 256, Path(tmp))
    x = torch.from_numpy(clean).permute(2, 0, 1)[None].float()
    grid = {}
    for level in LEVELS:
        for share, out in stage(x, x, level / 255).items():
            grid[f"{level} {share}"] = round(float(10 * np.log10(1 / float(((out.clamp(0, 1) - x) ** 2).mean()))), 3)
    return {"image": name, "psnr": grid}


def summary(rows: list[dict]) -> int:
    print(f"{len(rows)} pairs, noisy {np.mean([r['noisy'] for r in rows]):.3f}; mean PSNR per fit length (0: no "
          f"network) and white level (share of the mixture {SHARES})")
    keys = rows[0]["psnr"].keys()
    for steps in sorted({int(k.split()[0]) for k in keys}):
        cells = [f"fit {np.mean([r['psnr'][f'{steps} fit'] for r in rows]):.2f}"]
        for level in LEVELS:
            cells.append(f"{level}: " + "/".join(f"{np.mean([r['psnr'][f'{steps} {level} {s}'] for r in rows]):.2f}"
                                                 for s in SHARES))
        print(f"{steps:5d} | " + " | ".join(cells))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 600, 1000, 1500])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "results" / "real_noise_recipe.json")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--harm", action="store_true", help="the stage on the clean mean images instead")
    args = parser.parse_args()
    if args.harm:
        kept = harness.Results(args.out.with_name(args.out.stem + "_harm.json"))
        for name in tuning_pairs(args.data, args.step):
            if not kept.done(name):
                kept.add(harm(args.data, name))
        for key in kept.rows[0]["psnr"]:
            print(f"level, share {key}: mean {np.mean([r['psnr'][key] for r in kept.rows]):.2f} dB, lowest "
                  f"{min(r['psnr'][key] for r in kept.rows):.2f}")
        return 0
    results = harness.Results(args.out)
    if args.summary:
        return summary(results.rows)
    results.require(steps=args.steps)
    for name in tuning_pairs(args.data, args.step):
        if results.done(name):
            continue
        row = measure(args.data, name, args.steps)
        results.add(row)
        best = max(row["psnr"], key=row["psnr"].get)
        print(f"{name}: noisy {row['noisy']}, best {best} {row['psnr'][best]}, fit {row['fit_seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
