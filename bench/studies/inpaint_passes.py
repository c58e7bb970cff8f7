"""Collaborative passes after an inpainting fit: how many, from which noise level, and from which start.

``fast-inpaint`` projects its fit (averaged with biharmonic inpainting) onto the known pixels, then filters the
estimate by itself with collaborative Wiener filtering and projects it again, at a few decreasing noise levels
(:func:`deepprior.consistency.collaborative_projection`). This study fits ``fast-inpaint`` without the passes
(its default step count, seed 0) to grey CBSD68 photos with half the pixels dropped, as ``bench/tables.py``
makes the inpainting table's problems, then scores schedules of passes started from the fit alone (known pixels
put back), from the fit's average with biharmonic (what the preset passes on), and from biharmonic alone (the
control: what the passes give without the network). It chose ``FAST_INPAINT_LEVELS``.

    python bench/studies/inpaint_passes.py --data ../shared/data --images 101085,101087 --crop 256
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

from deepprior.consistency import collaborative_projection, project_to_data
from deepprior.imageio import from_tensor, to_tensor
from deepprior.presets import FAST_INPAINT_CLASSICAL_WEIGHT, get_preset

#: (passes, first level, last level), levels in grey levels out of 255, spaced geometrically
SCHEDULES = ((3, 10, 3), (4, 15, 3), (6, 20, 3), (10, 30, 2))


def levels(passes: int, first: float, last: float) -> list[float]:
    return [float(v) for v in np.geomspace(first / 255, last / 255, passes)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", default="101085,101087", help="tuning photos (CBSD68 names), comma-separated")
    parser.add_argument("--crop", type=int, help="centre crop (default: the whole photo)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/inpaint_passes.json"))
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "crop"))
    preset = replace(get_preset("fast-inpaint"), collaborative_levels=())
    for name in args.images.split(","):
        if results.done(name, args.crop):
            print(name, "done")
            continue
        clean = grey(harness.load_image(args.data, "tune/cbsd68", name, crop=args.crop))
        problem = harness.problem("inpaint", clean, 0, drop=0.5)
        y, op = to_tensor(problem.measurement), problem.operator
        start = time.perf_counter()
        result = harness.fit(problem.measurement, op, preset, seed=0, image_size=problem.image_size)
        fit_seconds = time.perf_counter() - start
        biharmonic = op.classical(y, tuple(y.shape))
        fitted = result.fitted.float()
        starts = {"fit": project_to_data(fitted, y, op), "biharmonic": project_to_data(biharmonic, y, op),
                  "mix": project_to_data((1 - FAST_INPAINT_CLASSICAL_WEIGHT) * fitted
                                         + FAST_INPAINT_CLASSICAL_WEIGHT * biharmonic, y, op)}

        def psnr(x: object) -> float:
            return round(harness.score("inpaint", problem.clean, from_tensor(x), 1)[0], 3)

        row = {"image": name, "crop": args.crop, "steps": result.iterations_run, "fit_seconds": round(fit_seconds, 1),
               "start": {k: psnr(v) for k, v in starts.items()}, "passes": []}
        for start_name, x0 in starts.items():
            for schedule in SCHEDULES:
                t = time.perf_counter()
                out = collaborative_projection(x0, y, op, levels(*schedule))
                row["passes"].append({"from": start_name, "schedule": list(schedule), "psnr": psnr(out),
                                      "seconds": round(time.perf_counter() - t, 1)})
                print(name, row["passes"][-1], flush=True)
        results.add(row)
    for row in results.rows:
        if row["crop"] == args.crop:
            print(row["image"], "start", row["start"])
            for p in row["passes"]:
                print(f"  from {p['from']:10s} {p['schedule']}: {p['psnr']:.2f} dB ({p['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
