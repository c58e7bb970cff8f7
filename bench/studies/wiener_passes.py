"""Repeat the Wiener stage, each pass using the last one's output as pilot: how much of the result is the fit's?

The ``fast`` denoiser's Wiener stage (``deepprior.refine.wiener_mix``) gains most when the fit is stopped
early, which made it tempting to stop earlier still and repeat the stage. This study answers whether that is a
faster deep image prior or just a classical denoiser: on a tuning photo at full size it fits ``fast`` for some
steps, then runs several Wiener passes from pilots of three origins (the fit at several step counts, non-local
means, total variation) and scores every pass against the ground truth. If the passes from every pilot end at
the same PSNR, the network no longer contributes to the result.

    python bench/studies/wiener_passes.py --data ../shared/data --images 101085 --steps 800 \\
        --out bench/results/wiener_passes.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch
from tune_probe import recipe

from deepprior.imageio import from_tensor, to_tensor
from deepprior.refine import wiener_mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", default="101085", help="tuning photos (CBSD68 names), comma-separated")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--steps", type=int, default=800, help="steps of the fit; its pilots are taken every 200")
    parser.add_argument("--passes", type=int, default=12)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "sigma", "steps", "passes"))
    for name in args.images.split(","):
        if results.done(name, args.sigma, args.steps, args.passes):
            print(name, "done")
            continue
        clean = harness.load_image(args.data, "tune/cbsd68", name)
        problem = harness.problem("denoise", clean, 0, sigma=args.sigma)
        noisy = to_tensor(problem.measurement)
        pilots: dict[str, torch.Tensor] = {}

        def keep(state, pilots: dict[str, torch.Tensor] = pilots) -> None:
            if state.iteration % 200 == 0:
                shown = state.average if state.average is not None else state.output
                pilots[f"fit at {state.iteration} steps"] = shown.float().cpu()

        harness.fit(problem.measurement, problem.operator, recipe("fast", {}), seed=0, image_size=problem.image_size,
                    iterations=args.steps, stop="fixed", sigma=problem.sigma, callbacks=[keep])
        classical = harness.baselines("denoise", problem.clean, problem.measurement, {"sigma": problem.sigma})
        for method in ("NLM", "TV"):
            pilots[method] = to_tensor(classical[method]().astype(np.float32))
        cbm3d = harness.score("denoise", problem.clean, classical["CBM3D"](), 1)[0]
        curves = {}
        for origin, pilot in pilots.items():
            curve = []
            for _ in range(args.passes):
                pilot = wiener_mix(noisy, pilot, problem.sigma).image.float()
                curve.append(round(harness.score("denoise", problem.clean, from_tensor(pilot), 1)[0], 3))
            curves[origin] = curve
            print(f"{name} {origin}: {curve}", flush=True)
        results.add({"image": name, "sigma": args.sigma, "steps": args.steps, "passes": args.passes,
                     "CBM3D": round(cbm3d, 3), "passes_psnr": curves})
    return 0


if __name__ == "__main__":
    sys.exit(main())
