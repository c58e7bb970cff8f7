"""Which recipe for strong noise: the paper's ``denoise-50`` alone, or the narrow network with the Wiener stage?

    python bench/studies/strong_noise_recipe.py --data ../shared/data --problem poisson10
    python bench/studies/strong_noise_recipe.py --data ../shared/data --problem gauss50
    python bench/studies/strong_noise_recipe.py --summary

Tuning photos only: CBSD68 in ``tune/cbsd68`` sorted by name, skipping the first 10 (those
``bench/poisson_noise.py`` reports), then every ``--every``-th; 128x128 centre crops (as the Poisson benchmark
cuts them). Problems: Poisson noise of peak 10 (``add_poisson``, seed 0), fitted through the generalised
Anscombe transform as ``--noise poisson --peak 10`` does; Gaussian noise of sigma 50 (clipped, seed 0). Each
fit is one of ``FITS`` (a preset and changes to its fit), stopped automatically as the default run stops it
(seed 0). Then, on that one fit, the denoising stage: the Wiener mixture and 1 to 4 collaborative passes, each
output also averaged with the mixture at the shares in ``SHARES``, at the stage's noise level (the measured
stabilised level for Poisson noise; for Poisson noise also at the transform's nominal level, as CBM3D is run).
Fits are kept in ``--cache``, so that a rerun scores stages only. Every output is scored on all channels against the clean crop, back in
the image's domain (exact unbiased inverse). The classical bar is scored in the same run: CBM3D at the
(stabilised) noise level. Rows go to ``bench/results/strong_noise_recipe.json`` as they finish.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch

from deepprior.blockmatch import collaborative_refine
from deepprior.degrade import add_poisson
from deepprior.imageio import from_tensor, to_tensor
from deepprior.jobs import TaskOptions
from deepprior.pipeline import Settings, restore
from deepprior.presets import get_preset
from deepprior.refine import wiener_mix
from deepprior.tasks import job_from_arrays

FITS: dict[str, tuple[str, dict[str, Any]]] = {
    "fast": ("fast", {}),
    "fast-in40": ("fast", {"reg_noise_std": 1 / 40}),
    "fast-in20": ("fast", {"reg_noise_std": 1 / 20}),
    "denoise-50": ("denoise-50", {}),
}
PASSES = 4
SHARES = (0.0, 0.25, 0.5)


def problem(kind: str, clean: np.ndarray) -> tuple[np.ndarray, TaskOptions]:
    if kind == "poisson10":
        return add_poisson(clean, 10.0, seed=0), TaskOptions(noise="poisson", peak=10.0)
    return harness.noisy(clean, 50.0, 0), TaskOptions(noise="gaussian", sigma=50 / 255)


def cbm3d(noisy: np.ndarray, job: Any) -> np.ndarray:
    import bm3d

    stabiliser = getattr(job.measurement.noise, "stabiliser", None)
    if stabiliser is None:
        return np.clip(bm3d.bm3d_rgb(noisy, job.measurement.sigma), 0, 1)
    return stabiliser.inverse(bm3d.bm3d_rgb(stabiliser.forward(noisy), stabiliser.sigma))


def stage_scores(clean: np.ndarray, noisy: np.ndarray, job: Any, fitted: np.ndarray,
                 nominal: bool = False) -> dict[str, float]:
    """The stage's outputs from ``fitted`` (in the image's domain), scored back in the image's domain; at the
    transform's nominal level instead of the measured one when ``nominal``."""
    stabiliser = getattr(job.measurement.noise, "stabiliser", None)
    forward = stabiliser.forward if stabiliser is not None else (lambda x: x)
    back = stabiliser.inverse if stabiliser is not None else (lambda x: np.clip(x, 0, 1))
    pilot = stabiliser.expected(fitted) if stabiliser is not None else fitted
    sigma = stabiliser.sigma if nominal and stabiliser is not None else job.measurement.sigma
    y = to_tensor(forward(noisy))
    mix = wiener_mix(y, to_tensor(np.asarray(pilot, np.float32)), sigma).image.float()

    def score(t: torch.Tensor) -> float:
        return round(harness.score("denoise", clean, back(from_tensor(t)), 1)[0], 4)

    scores = {"mixture": score(mix)}
    refined = mix
    for k in range(1, PASSES + 1):
        refined = collaborative_refine(y, refined, sigma)
        for share in SHARES:
            scores[f"pass{k}-share{share:g}"] = score(share * mix + (1 - share) * refined)
    return scores


def measure(clean: np.ndarray, kind: str, fit_name: str, cache: Path) -> dict[str, Any]:
    noisy, options = problem(kind, clean)
    job = job_from_arrays("denoise", {"image": noisy}, options, ground_truth=clean)
    if cache.exists():
        saved = np.load(cache)
        fitted, steps, seconds, reason = saved["fitted"], int(saved["steps"]), float(saved["seconds"]), str(saved["reason"])
    else:
        name, changes = FITS[fit_name]
        preset = get_preset(name)
        preset = replace(preset, name=fit_name, fit=replace(preset.fit, **changes), refine=None)
        start = time.perf_counter()
        out = restore(job, Settings(preset=preset, seed=0, refine=False))
        seconds = time.perf_counter() - start
        fitted, steps, reason = from_tensor(out.result.fitted.cpu()), out.result.iterations_run, out.result.stop_reason
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, fitted=fitted, steps=steps, seconds=seconds, reason=reason)
    row = {"fit": round(harness.score("denoise", clean, fitted, 1)[0], 4), "steps": steps, "stop_reason": reason,
           "seconds": round(seconds, 1), "sigma_255": round(job.measurement.sigma * 255, 3)}
    row["stage"] = stage_scores(clean, noisy, job, fitted)
    if getattr(job.measurement.noise, "stabiliser", None) is not None:
        row["stage_nominal"] = stage_scores(clean, noisy, job, fitted, nominal=True)
    return row


def summary(rows: list[dict[str, Any]]) -> None:
    for kind in sorted({r["problem"] for r in rows}):
        chosen = [r for r in rows if r["problem"] == kind]
        images = sorted({r["image"] for r in chosen})
        print(f"## {kind}: {len(images)} photos ({', '.join(images)})")
        base = [r for r in chosen if r["fit"] == "cbm3d"]
        if base:
            print(f"CBM3D {np.mean([r['psnr'] for r in base]):.3f}  noisy {np.mean([r['noisy'] for r in base]):.3f}")
        for fit_name in FITS:
            mine = [r for r in chosen if r["fit"] == fit_name]
            if len(mine) != len(images) or not mine:
                continue
            print(f"{fit_name:12s} fit {np.mean([r['result']['fit'] for r in mine]):.3f} "
                  f"steps {np.mean([r['result']['steps'] for r in mine]):.0f} "
                  f"s {np.mean([r['result']['seconds'] for r in mine]):.0f}")
            for field in ("stage", "stage_nominal"):
                if field not in mine[0]["result"]:
                    continue
                stages = mine[0]["result"][field]
                best = sorted(stages, key=lambda s: -np.mean([r["result"][field][s] for r in mine]))[:4]
                print(f"    {field}: " + " ".join(f"{s} {np.mean([r['result'][field][s] for r in mine]):.3f}"
                                              for s in ["mixture", "pass3-share0.25", *best]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--problem", choices=["poisson10", "gauss50"], default="poisson10")
    parser.add_argument("--every", type=int, default=12)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--fits", nargs="+", default=list(FITS), choices=list(FITS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/strong_noise_recipe.json"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/deepprior-strong-fits"), help="fits kept here")
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "crop", "problem", "fit"), fields={"machine": harness.machine()})
    if not args.summary:
        names = sorted(p.stem for p in (args.data / "tune" / "cbsd68").glob("*.png"))[10:][:: args.every]
        for image in names:
            clean = harness.load_image(args.data, "tune/cbsd68", image, crop=args.crop)
            if not results.done(image, args.crop, args.problem, "cbm3d"):
                noisy, options = problem(args.problem, clean)
                job = job_from_arrays("denoise", {"image": noisy}, options)
                results.add({"image": image, "crop": args.crop, "problem": args.problem, "fit": "cbm3d",
                             "noisy": round(harness.score("denoise", clean, noisy, 1)[0], 4),
                             "psnr": round(harness.score("denoise", clean, cbm3d(noisy, job), 1)[0], 4)})
            for fit_name in args.fits:
                if results.done(image, args.crop, args.problem, fit_name):
                    continue
                row = measure(clean, args.problem, fit_name,
                              args.cache / f"{image}-{args.crop}-{args.problem}-{fit_name}.npz")
                results.add({"image": image, "crop": args.crop, "problem": args.problem, "fit": fit_name, "result": row})
                best = max(row["stage"].items(), key=lambda kv: kv[1])
                print(image, args.problem, fit_name, f"fit {row['fit']:.2f} ({row['steps']} steps, {row['seconds']} s)",
                      f"mixture {row['stage']['mixture']:.2f}, best {best[0]} {best[1]:.2f}", flush=True)
    summary(results.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
