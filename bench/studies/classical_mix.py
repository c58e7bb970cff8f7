"""Average an inpainting fit with biharmonic inpainting: the score of each weight as the fit goes on.

``fast-inpaint`` alone only draws level with biharmonic inpainting on the tuning photos, but the two make
different errors. This study fits ``fast-inpaint`` (without its own averaging) to grey CBSD68 photos with half
the pixels dropped (as ``bench/tables.py`` makes the inpainting table's problems) and, every 250 steps,
scores ``project(w * biharmonic + (1 - w) * fit)`` for several weights ``w``; ``w = 0`` is the fit alone with
the known pixels put back. It chose ``FAST_INPAINT_CLASSICAL_WEIGHT``.

    python bench/studies/classical_mix.py --data ../shared/data --images 101085,101087 --crop 256 --steps 3000
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
from tune_probe import grey

from deepprior.consistency import project_to_data
from deepprior.imageio import from_tensor, to_tensor
from deepprior.presets import get_preset

WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", default="101085,101087", help="tuning photos (CBSD68 names), comma-separated")
    parser.add_argument("--crop", type=int, help="centre crop (default: the whole photo)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/classical_mix.json"))
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "crop", "steps"))
    preset = replace(get_preset("fast-inpaint"), refine=None, classical_weight=0.0)
    for name in args.images.split(","):
        if results.done(name, args.crop, args.steps):
            print(name, "done")
            continue
        clean = grey(harness.load_image(args.data, "tune/cbsd68", name, crop=args.crop))
        problem = harness.problem("inpaint", clean, 0, drop=0.5)
        y = to_tensor(problem.measurement)
        biharmonic = problem.operator.classical(y, tuple(y.shape))
        curve: list[list[float]] = []

        def record(state, curve: list[list[float]] = curve) -> None:
            if state.iteration % 250 == 0:
                fitted = (state.average if state.average is not None else state.output).float().cpu()
                scores = [round(harness.score("inpaint", problem.clean, from_tensor(
                    project_to_data((1 - w) * fitted + w * biharmonic, y, problem.operator)), 1)[0], 3)
                    for w in WEIGHTS]
                curve.append([state.iteration, round(state.seconds, 1), *scores])
                print(name, curve[-1], flush=True)

        start = time.perf_counter()
        harness.fit(problem.measurement, problem.operator, preset, seed=0, image_size=problem.image_size,
                    iterations=args.steps, stop="fixed", callbacks=[record])
        results.add({"image": name, "crop": args.crop, "steps": args.steps, "weights": list(WEIGHTS),
                     "biharmonic": round(harness.score("inpaint", problem.clean, from_tensor(biharmonic), 1)[0], 3),
                     "curve": curve, "seconds": round(time.perf_counter() - start, 1)})
    rows = [r for r in results.rows if r["crop"] == args.crop and r["steps"] == args.steps]
    if rows:
        last = np.mean([r["curve"][-1][2:] for r in rows], axis=0)
        biharmonic_mean = np.mean([r["biharmonic"] for r in rows])
        print(f"mean of {len(rows)} after {args.steps} steps: biharmonic {biharmonic_mean:.3f}; "
              + ", ".join(f"w={w}: {v:.3f}" for w, v in zip(WEIGHTS, last)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
