"""Probe a recipe on the tuning photos (CBSD68): its score every so many steps, its time, the baselines.

Recipes of the fast presets are chosen with this, on ``tune/cbsd68`` only (never on a table's images). One run
gives the whole curve of the table's score against the step count and the seconds, so the step budget, the
network and the learning rate can be read off it. Problems are made as in ``bench/tables.py`` (super-resolution:
mod-crop and Pillow Lanczos; inpainting: a Bernoulli mask of seed 0; denoising: clipped Gaussian noise) and scored
the same way (luma with an ``s``-pixel border for super-resolution).

    python bench/studies/tune_probe.py --data ../shared/data --task superres --scale 4 --crop 256 --images 4 \\
        --preset fast-sr --out bench/results/tune_superres.json
    python bench/studies/tune_probe.py --data ../shared/data --task superres --scale 4 --crop 256 --images 4 \\
        --preset superres --changes '{"lr": 0.02}' --iterations 1500 --out bench/results/tune_superres.json

``--changes`` is JSON: FitConfig fields, ``widths`` (the skip network's encoder/decoder widths), ``net_options``
(merged), ``input_channels``, ``input_scale``, ``refine``. ``--grey`` converts the photos to grey (the inpainting
table's images are grey). Rows are keyed by image, crop, problem and recipe, and skipped on a rerun.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np

from deepprior.imageio import from_tensor
from deepprior.presets import get_preset


def recipe(name: str, changes: dict[str, Any]):
    preset = get_preset(name)
    changes = dict(changes)
    net_options = dict(preset.net_options)
    if "widths" in changes:
        widths = tuple(changes.pop("widths"))
        net_options.update(channels_down=widths, channels_up=widths)
    net_options.update(changes.pop("net_options", {}))
    top = {k: changes.pop(k) for k in list(changes) if k in ("input_channels", "input_scale", "refine", "input_kind")}
    return replace(preset, net_options=MappingProxyType(net_options), fit=replace(preset.fit, **changes), **top)


def grey(image: np.ndarray) -> np.ndarray:
    return (image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--task", required=True, choices=["superres", "inpaint", "denoise"])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--drop", type=float, default=0.5)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--images", default="4", help="how many of the tuning photos (sorted), or names, comma-separated")
    parser.add_argument("--folder", default="tune/cbsd68",
                        help="image folder under --data; only to check a chosen recipe elsewhere, never to choose it")
    parser.add_argument("--crop", type=int, help="centre crop of the ground truth (default: whole photo)")
    parser.add_argument("--grey", action="store_true")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--changes", default="{}")
    parser.add_argument("--iterations", type=int, help="steps to run (default: the recipe's count)")
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    folder = args.data / args.folder
    names = sorted(p.stem for p in folder.glob("*.png"))
    # a count takes the first photos; anything else (the photos are named by number) is a list of names
    names = names[: int(args.images)] if args.images.isdigit() and int(args.images) <= len(names) else \
        args.images.split(",")
    options = {"superres": {"scale": args.scale}, "inpaint": {"drop": args.drop}, "denoise": {"sigma": args.sigma}}[args.task]
    key = ("image", "crop", "grey", "task", "options", "preset", "changes", "iterations")
    results = harness.Results(args.out, key=key)
    preset = recipe(args.preset, json.loads(args.changes))
    for name in names:
        ident = (name, args.crop, args.grey, args.task, json.dumps(options), args.preset, args.changes, args.iterations)
        if results.done(*ident):
            print(name, "done:", results.get(*ident)["curve"][-1])
            continue
        clean = harness.load_image(args.data, args.folder, name, crop=args.crop)
        if args.grey:
            clean = grey(clean)
        problem = harness.problem(args.task, clean, 0, **options)
        extra = {"sigma": problem.sigma, "mask": problem.mask}
        baselines = {m: round(harness.score(args.task, problem.clean, f(), problem.scale)[0], 3)
                     for m, f in harness.baselines(args.task, problem.clean, problem.measurement, extra).items()
                     if m not in ("NLM", "TV")}
        curve: list[list[float]] = []

        def record(state: Any, problem: harness.Problem = problem, curve: list[list[float]] = curve) -> None:
            if state.iteration % args.every == 0:
                shown = state.average if state.average is not None else state.output
                point = [state.iteration, round(state.seconds, 2),
                         round(harness.score(args.task, problem.clean, from_tensor(shown.cpu()), problem.scale)[0], 3)]
                if args.task == "denoise":  # the score after the Wiener stage, were the fit stopped here
                    from deepprior.imageio import to_tensor
                    from deepprior.refine import wiener_mix

                    refined = wiener_mix(to_tensor(problem.measurement), shown.float().cpu(), problem.sigma).image
                    point.append(round(harness.score(args.task, problem.clean, from_tensor(refined), 1)[0], 3))
                else:  # the score after the data-consistency stage
                    from deepprior.consistency import project_to_data
                    from deepprior.imageio import to_tensor

                    projected = project_to_data(shown.float().cpu(), to_tensor(problem.measurement), problem.operator)
                    point.append(round(harness.score(args.task, problem.clean, from_tensor(projected),
                                                     problem.scale)[0], 3))
                curve.append(point)

        start = time.perf_counter()
        result = harness.fit(problem.measurement, problem.operator, preset, seed=args.seed, image_size=problem.image_size,
                             iterations=args.iterations, stop="fixed" if args.iterations else None,
                             sigma=problem.sigma, callbacks=[record])
        final = round(harness.score(args.task, problem.clean, from_tensor(result.output.cpu()), problem.scale)[0], 3)
        row = {"image": name, "crop": args.crop, "grey": args.grey, "task": args.task, "options": json.dumps(options),
               "preset": args.preset, "changes": args.changes, "iterations": args.iterations, "baselines": baselines,
               "curve": curve, "final": final, "steps": result.iterations_run, "stop": result.stop_reason,
               "seconds": round(time.perf_counter() - start, 1), "parameters": result.parameters}
        results.add(row)
        print(f"{name}: final {final} after {result.iterations_run} steps ({row['seconds']} s, {result.stop_reason}); "
              f"baselines {baselines}; curve {[c[2] for c in curve]}", flush=True)
    rows = [r for r in results.rows if r["preset"] == args.preset and r["changes"] == args.changes
            and r["task"] == args.task and r["crop"] == args.crop and r["iterations"] == args.iterations
            and r["image"] in names and r["options"] == json.dumps(options)]
    if rows:
        base = {m: np.mean([r["baselines"][m] for r in rows]) for m in rows[0]["baselines"]}
        steps = [c[0] for c in rows[0]["curve"]]
        mean_curve = [np.mean([r["curve"][i][2] for r in rows if len(r["curve"]) > i]) for i in range(len(steps))]
        secs = [np.mean([r["curve"][i][1] for r in rows if len(r["curve"]) > i]) for i in range(len(steps))]
        print(f"mean of {len(rows)}: final {np.mean([r['final'] for r in rows]):.3f}; baselines "
              + ", ".join(f"{m} {v:.3f}" for m, v in base.items()))
        print("  ".join(f"{s}:{p:.2f}({t:.0f}s)" for s, p, t in zip(steps, mean_curve, secs)))
        if len(rows[0]["curve"][0]) > 3:
            refined = [np.mean([r["curve"][i][3] for r in rows if len(r["curve"]) > i]) for i in range(len(steps))]
            print("refined: " + "  ".join(f"{s}:{p:.2f}" for s, p in zip(steps, refined)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
