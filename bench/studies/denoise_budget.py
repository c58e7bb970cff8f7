"""How many steps the ``fast`` denoiser needs at full size once its two classical passes follow the fit.

Full-size photos take the narrow network thousands of steps to reach the automatic stop (the F16 512x512
image about 2500, over 15 minutes here). The fit only has to be a good pilot: the Wiener mixture
(``deepprior.refine.wiener_mix``) and the collaborative pass on its output
(``deepprior.blockmatch.collaborative_refine``) take it the rest of the way. This study fits ``fast`` on
full-size tuning photos with sigma 25 for a fixed number of steps and scores, every ``--every`` steps, the
fit, the Wiener mixture and the two passes together, with the seconds per step and CBM3D for scale.

    python bench/studies/denoise_budget.py --data ../shared/data --images 101085,101087 --steps 1500 \\
        --out bench/results/denoise_budget.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import torch
from tune_probe import recipe

from deepprior.blockmatch import collaborative_refine
from deepprior.imageio import from_tensor, to_tensor
from deepprior.refine import wiener_mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", default="101085,101087", help="tuning photos (CBSD68 names), comma-separated")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=300)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "sigma", "steps", "every"))
    for name in args.images.split(","):
        if results.done(name, args.sigma, args.steps, args.every):
            print(name, "done")
            continue
        clean = harness.load_image(args.data, "tune/cbsd68", name)
        problem = harness.problem("denoise", clean, 0, sigma=args.sigma)
        noisy = to_tensor(problem.measurement)
        pilots: dict[int, torch.Tensor] = {}

        def keep(state, pilots: dict[int, torch.Tensor] = pilots) -> None:
            if state.iteration % args.every == 0:
                shown = state.average if state.average is not None else state.output
                pilots[state.iteration] = shown.float().cpu()

        start = time.perf_counter()
        harness.fit(problem.measurement, problem.operator, recipe("fast", {}), seed=0, image_size=problem.image_size,
                    iterations=args.steps, stop="fixed", sigma=problem.sigma, callbacks=[keep])
        step_seconds = (time.perf_counter() - start) / args.steps

        def psnr(image: torch.Tensor, clean=problem.clean) -> float:
            return round(harness.score("denoise", clean, from_tensor(image), 1)[0], 3)

        curve = []
        for steps, pilot in sorted(pilots.items()):
            start = time.perf_counter()
            mixed = wiener_mix(noisy, pilot, problem.sigma).image.float()
            both = collaborative_refine(noisy, mixed, problem.sigma)
            seconds = time.perf_counter() - start
            curve.append({"steps": steps, "fit": psnr(pilot), "wiener": psnr(mixed), "two_passes": psnr(both),
                          "refine_seconds": round(seconds, 1)})
            print(name, curve[-1], flush=True)
        classical = harness.baselines("denoise", problem.clean, problem.measurement, {"sigma": problem.sigma})
        cbm3d = harness.score("denoise", problem.clean, classical["CBM3D"](), 1)[0]
        results.add({"image": name, "sigma": args.sigma, "steps": args.steps, "every": args.every,
                     "size": list(problem.image_size), "step_seconds": round(step_seconds, 4),
                     "CBM3D": round(cbm3d, 3), "curve": curve})
    return 0


if __name__ == "__main__":
    sys.exit(main())
