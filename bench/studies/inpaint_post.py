"""What follows an inpainting fit: the biharmonic weight and the collaborative passes' matching, scored on one fit.

``fast-inpaint`` averages its fit with biharmonic inpainting, projects the average onto the known pixels, then
runs collaborative passes (:func:`deepprior.consistency.collaborative_projection`). Everything after the fit
costs seconds, the fit minutes: this study fits ``fast-inpaint`` once per tuning photo (its default step count,
seed 0, grey, half the pixels dropped as ``bench/tables.py`` drops them), keeps the fit in
``bench/results/cache/`` so that a rerun or a new variant needs no new fit, and scores each variant of the
stages after it. The first variant is the preset as it is. ``--changes`` (JSON of FitConfig fields) scores a
changed fit instead; rows say which fit they score.

    python bench/studies/inpaint_post.py --data ../shared/data --images 101085,101087,102061 --crop 256
    python bench/studies/inpaint_post.py --data ../shared/data --images 101085,101087 --crop 256 \
        --changes '{"lr_decay": 0.3}' --variants default
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch
from tune_probe import grey

from deepprior.consistency import collaborative_projection, project_to_data
from deepprior.imageio import from_tensor, to_tensor
from deepprior.presets import FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, get_preset


def levels(passes: int, first: float, last: float) -> tuple[float, ...]:
    """``passes`` noise levels spaced geometrically from ``first`` to ``last`` grey levels (out of 255)."""
    return tuple(float(v) for v in np.geomspace(first / 255, last / 255, passes))


#: name -> (biharmonic weight, levels, filter options, how the fit and biharmonic meet: "mix" averages them
#: before the passes, "partner" averages the fit with biharmonic after its own passes, "apart" averages the two
#: after their own passes, "apart, then N A B" adds N passes from A to B grey levels after that)
VARIANTS: dict[str, tuple[Any, ...]] = {
    "default": (FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, {}),
    "weight 0.35": (0.35, FAST_INPAINT_LEVELS, {}),
    "weight 0.65": (0.65, FAST_INPAINT_LEVELS, {}),
    "group 32": (FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, {"group": 32}),
    "search 24": (FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, {"search": 24}),
    "stride 2": (FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, {"stride": 2}),
    "patch 6": (FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, {"patch": 6}),
    "group 32, search 24": (FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, {"group": 32, "search": 24}),
    "eight, 25 to 2": (FAST_INPAINT_CLASSICAL_WEIGHT, levels(8, 25, 2), {}),
    "biharmonic refined first": (FAST_INPAINT_CLASSICAL_WEIGHT, FAST_INPAINT_LEVELS, {}, "partner"),
    "refined apart, averaged": (0.5, FAST_INPAINT_LEVELS, {}, "apart"),
    "refined apart, averaged, 3 more": (0.5, FAST_INPAINT_LEVELS, {}, "apart, then 3 6 2"),
    "refined apart, averaged, 3 more from 10": (0.5, FAST_INPAINT_LEVELS, {}, "apart, then 3 10 2"),
    "refined apart, averaged, 6 more": (0.5, FAST_INPAINT_LEVELS, {}, "apart, then 6 20 3"),
    "refined apart, averaged, 2 more": (0.5, FAST_INPAINT_LEVELS, {}, "apart, then 2 4 2"),
    "refined apart, 0.35, 3 more": (0.35, FAST_INPAINT_LEVELS, {}, "apart, then 3 6 2"),
}


def stages(fitted: torch.Tensor, biharmonic: torch.Tensor, y: torch.Tensor, op: Any, variant: str) -> torch.Tensor:
    """What follows the fit in ``variant``."""
    weight, schedule, options, *rest = VARIANTS[variant]
    mode = rest[0] if rest else "mix"

    def passes(x: torch.Tensor, schedule: tuple[float, ...] = schedule) -> torch.Tensor:
        return collaborative_projection(project_to_data(x, y, op), y, op, schedule, **options)

    if mode == "mix":
        return passes((1 - weight) * fitted + weight * biharmonic)
    if mode == "partner":
        return passes((1 - weight) * fitted + weight * passes(biharmonic))
    out = project_to_data((1 - weight) * passes(fitted) + weight * passes(biharmonic), y, op)
    if mode == "apart":
        return out
    count, first, last = (float(v) for v in mode.removeprefix("apart, then ").split())
    return passes(out, levels(int(count), first, last))


def cached_fit(cache: Path, name: str, crop: int | None, problem: harness.Problem,
               changes: dict[str, Any]) -> tuple[torch.Tensor, float]:
    """The fit's float output for this photo (from ``cache`` when there), and the seconds the fit took."""
    tag = "".join(f"_{k}{v}" for k, v in sorted(changes.items()))
    path = cache / f"{name}_{crop or 'full'}{tag}.npz"
    if path.exists():
        saved = np.load(path)
        return torch.from_numpy(saved["fitted"]), float(saved["seconds"])
    preset = get_preset("fast-inpaint")
    # result.fitted is the fit before the stages that follow it
    preset = replace(preset, collaborative_levels=(), fit=replace(preset.fit, **changes))
    start = time.perf_counter()
    result = harness.fit(problem.measurement, problem.operator, preset, seed=0, image_size=problem.image_size)
    seconds = time.perf_counter() - start
    fitted = result.fitted.float()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, fitted=fitted.numpy(), seconds=seconds)
    return fitted, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", default="101085,101087,102061", help="tuning photos (CBSD68), comma-separated")
    parser.add_argument("--crop", type=int, help="centre crop (default: the whole photo)")
    parser.add_argument("--changes", default="{}", help="JSON: FitConfig fields to change in the fit")
    parser.add_argument("--variants", help="names of VARIANTS to score, ';'-separated (default: all)")
    parser.add_argument("--cache", type=Path, default=Path("bench/results/cache/inpaint_fits"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/inpaint_post.json"))
    args = parser.parse_args()
    names = args.variants.split(";") if args.variants else list(VARIANTS)
    changes = json.loads(args.changes)
    fit = json.dumps(changes, sort_keys=True)
    results = harness.Results(args.out, key=("image", "crop", "fit", "variant"))
    for image in args.images.split(","):
        clean = grey(harness.load_image(args.data, "tune/cbsd68", image, crop=args.crop))
        problem = harness.problem("inpaint", clean, 0, drop=0.5)
        y, op = to_tensor(problem.measurement), problem.operator
        fitted, fit_seconds = None, 0.0
        for variant in names:
            if results.done(image, args.crop, fit, variant):
                continue
            if fitted is None:
                fitted, fit_seconds = cached_fit(args.cache, image, args.crop, problem, changes)
                biharmonic = op.classical(y, tuple(y.shape))
            start = time.perf_counter()
            out = stages(fitted, biharmonic, y, op, variant)
            row: dict[str, Any] = {
                "image": image, "crop": args.crop, "fit": fit, "variant": variant,
                "psnr": round(harness.score("inpaint", problem.clean, from_tensor(out), 1)[0], 3),
                "seconds": round(time.perf_counter() - start, 1), "fit_seconds": round(fit_seconds, 1)}
            results.add(row)
            print(row, flush=True)
    print("fit:", fit)
    print(f"{'variant':24s}" + "".join(f"{i:>9s}" for i in args.images.split(",")) + "     mean")
    for variant in names:
        values = [r["psnr"] for i in args.images.split(",") if (r := results.get(i, args.crop, fit, variant))]
        print(f"{variant:24s}" + "".join(f"{v:9.3f}" for v in values) + f"{np.mean(values):9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
