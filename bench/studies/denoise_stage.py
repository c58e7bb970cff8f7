"""Variants of the denoiser's classical stage, scored on the pilots that the default fit gives at full size.

At full size the ``fast`` denoiser's fit is cut short by its pixel budget, and its classical stage (the
Wiener mixture, then collaborative Wiener filtering matched on the mixture: ``deepprior.engine.wiener_stage``)
does much of the work. This study runs the default fit once per tuning photo (automatic stop within the budget,
sigma known), keeps its output in ``--cache`` so that later runs reuse it, and scores variants of the stage on
that same pilot: larger stacks and search windows (BM3D's own Wiener stage stacks up to 32 patches in a 39x39
window), one to ten collaborative passes each piloted by the one before, and two controls: the same passes with
the noisy image as pilot (no network) and with non-local means as pilot. CBM3D is printed for scale.

    python bench/studies/denoise_stage.py --data ../shared/data --images 101085,101087,102061 \\
        --out bench/results/denoise_stage.json
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch

from deepprior.blockmatch import collaborative_refine
from deepprior.imageio import from_tensor, to_tensor
from deepprior.refine import wiener_mix

Stage = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def collaborative(**options: int) -> Stage:
    """The default stage with ``options`` for the collaborative pass."""
    def stage(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> torch.Tensor:
        mixed = wiener_mix(noisy, pilot, sigma).image.float()
        return collaborative_refine(noisy, mixed, sigma, **options)
    return stage


def times(passes: int, **options: int) -> Stage:
    """The default stage, then ``passes - 1`` more collaborative passes, each piloted by the one before."""
    first = collaborative(**options)

    def stage(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> torch.Tensor:
        out = first(noisy, pilot, sigma)
        for _ in range(passes - 1):
            out = collaborative_refine(noisy, out, sigma, **options)
        return out
    return stage


def twice(**options: int) -> Stage:
    """The default stage, then a second collaborative pass piloted by the first one's result."""
    first = collaborative(**options)

    def stage(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> torch.Tensor:
        return collaborative_refine(noisy, first(noisy, pilot, sigma), sigma, **options)
    return stage


def without_fit(inner: Stage) -> Stage:
    """``inner`` with the noisy image itself as its pilot: what the stage does with no fit at all."""
    def stage(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> torch.Tensor:
        return inner(noisy, noisy, sigma)
    return stage


def nlm_pilot(inner: Stage) -> Stage:
    """``inner`` with non-local means of the noisy image as its pilot: the same passes from a classical start."""
    def stage(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> torch.Tensor:
        image = from_tensor(noisy)
        classical = harness.baselines("denoise", image, image, {"sigma": sigma})["NLM"]()
        return inner(noisy, to_tensor(classical), sigma)
    return stage


VARIANTS: dict[str, Stage] = {
    "default (group 16, search 16)": collaborative(),
    "group 32": collaborative(group=32),
    "search 19": collaborative(search=19),
    "group 32, search 19": collaborative(group=32, search=19),
    "default, twice": twice(),
    "group 32, search 19, twice": twice(group=32, search=19),
    "default, three times": times(3),
    "default, four times": times(4),
    "default, six times": times(6),
    "stride 4, three times": times(3, stride=4),
    "stride 4, six times": times(6, stride=4),
    "default, ten times": times(10),
    "stride 4, ten times": times(10, stride=4),
    "no fit (noisy as pilot), six times": without_fit(times(6)),
    "no fit (noisy as pilot), three times": without_fit(times(3)),
    "NLM pilot, once": nlm_pilot(times(1)),
    "NLM pilot, twice": nlm_pilot(times(2)),
    "NLM pilot, three times": nlm_pilot(times(3)),
    "NLM pilot, six times": nlm_pilot(times(6)),
    "no fit (noisy as pilot), ten times": without_fit(times(10)),
}


def pilot_for(name: str, problem: harness.Problem, cache: Path) -> tuple[np.ndarray, dict]:
    """The default fit's output on ``problem`` (from ``cache`` when a run already made it)."""
    path = cache / f"{name}-{problem.image_size[0]}x{problem.image_size[1]}-s{problem.sigma * 255:g}.npz"
    if path.exists():
        saved = np.load(path)
        return saved["pilot"], {"steps": int(saved["steps"]), "fit_seconds": round(float(saved["seconds"]), 1)}
    start = time.perf_counter()
    result = harness.fit(problem.measurement, None, "fast", seed=0, sigma=problem.sigma, refine=False)
    seconds = time.perf_counter() - start
    pilot = from_tensor(result.fitted.float().cpu())
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, pilot=pilot, steps=result.stop_iteration, seconds=seconds)
    return pilot, {"steps": result.stop_iteration, "fit_seconds": round(seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", default="101085,101087,102061", help="photos of --folder, comma-separated")
    parser.add_argument("--folder", default="tune/cbsd68", help="image folder under --data (tuning photos by default)")
    parser.add_argument("--crop", type=int, help="centre crops of this size instead of whole photos")
    parser.add_argument("--variants", help="only these variants (names as printed), separated by ';'")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/deepprior-denoise-pilots"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "sigma", "variant"))
    for name in args.images.split(","):
        clean = harness.load_image(args.data, args.folder, name, crop=args.crop)
        problem = harness.problem("denoise", clean, 0, sigma=args.sigma)
        noisy = to_tensor(problem.measurement)
        pilot, fit = pilot_for(name, problem, args.cache)

        def psnr(image: np.ndarray, clean: np.ndarray = clean) -> float:
            return round(harness.score("denoise", clean, image, 1)[0], 3)

        print(name, "fit", fit, "pilot", psnr(pilot), flush=True)
        for variant, stage in VARIANTS.items():
            if results.done(name, args.sigma, variant) or (args.variants and variant not in args.variants.split(";")):
                continue
            start = time.perf_counter()
            refined = stage(noisy, to_tensor(pilot), problem.sigma)
            row = {"image": name, "sigma": args.sigma, "variant": variant, "psnr": psnr(from_tensor(refined)),
                   "seconds": round(time.perf_counter() - start, 1), "pilot_psnr": psnr(pilot), **fit}
            results.add(row)
            print(name, variant, row["psnr"], f"{row['seconds']} s", flush=True)
        if not results.done(name, args.sigma, "CBM3D") and not args.variants:
            classical = harness.baselines("denoise", clean, problem.measurement, {"sigma": problem.sigma})
            results.add({"image": name, "sigma": args.sigma, "variant": "CBM3D",
                         "psnr": psnr(classical["CBM3D"]())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
