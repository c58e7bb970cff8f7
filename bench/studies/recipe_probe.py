"""Probe a recipe variant on one Set9 crop: where ``auto`` stops, its PSNR, the run's best step, seconds per step.

For choosing a ``fast`` preset by measurement. The noisy image is made as in
``bench/quality.py`` (same seed, clipped); ``auto`` uses the estimated sigma,
as the command line does. Changes are JSON: FitConfig fields, plus ``widths``
(the encoder/decoder widths of the skip network), ``input_kind`` and
``input_channels``.

It prints one line; with ``--out`` it also records it as a row of a
resumable JSON file (a probe already there, same image, crop, base and
changes, is not run again).

    python bench/studies/recipe_probe.py --data ../shared/data --image f16 --crop 128 \\
        --changes '{"widths": [16, 32, 64, 128, 128], "reg_noise_std": 0.0, "ema_debias": true}'
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import _bench  # noqa: F401  (bench/ on the path)
import harness
import torch

from deepprior.fitting import Oracle
from deepprior.imageio import from_tensor
from deepprior.metrics import psnr
from deepprior.noise import estimate_sigma
from deepprior.presets import get_preset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--image", default="f16")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--base", default="denoise", help="the preset to change")
    parser.add_argument("--changes", default="{}", help="JSON: FitConfig fields, widths, input_kind, input_channels")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, help="also record the probe as a row of this JSON file (resumable)")
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "crop", "base", "changes")) if args.out else None
    if results and results.done(args.image, args.crop, args.base, args.changes):
        print(f"already in {args.out}: {results.get(args.image, args.crop, args.base, args.changes)}")
        return 0
    torch.set_num_threads(args.threads)
    changes = json.loads(args.changes)
    preset = get_preset(args.base)
    if "widths" in changes:
        widths = tuple(changes.pop("widths"))
        preset = replace(preset, net_options=MappingProxyType(dict(
            preset.net_options, channels_down=widths, channels_up=widths, channels_skip=(4,) * len(widths))))
    top = {k: changes.pop(k) for k in list(changes) if k in ("input_kind", "input_channels")}
    preset = replace(preset, fit=replace(preset.fit, **changes), **top)
    clean = harness.load_image(args.data, "set9", args.image, crop=args.crop)
    noisy = harness.noisy(clean, 25, seed=0)
    oracle = Oracle()
    t0 = time.perf_counter()
    result = harness.fit(noisy, None, preset, seed=0, sigma=estimate_sigma(noisy), ground_truth=clean,
                         callbacks=[oracle])
    best_step, best = oracle.selection()
    auto = psnr(clean, from_tensor(result.output.cpu()))
    top_psnr = psnr(clean, from_tensor(best.cpu()))
    print(f"{args.image} {args.crop} {args.base} {args.changes}: auto {auto:.2f} @ {result.iterations_run}, "
          f"best {top_psnr:.2f} @ {best_step}, "
          f"{time.perf_counter() - t0:.0f} s, {result.seconds / result.iterations_run:.3f} s/step ({result.precision})")
    if results:
        results.add({"image": args.image, "crop": args.crop, "base": args.base, "changes": args.changes,
                     "auto": {"psnr": auto, "stopped_at": result.iterations_run}, "best": {"psnr": top_psnr,
                     "iteration": best_step}, "seconds": time.perf_counter() - t0,
                     "seconds_per_step": result.seconds / result.iterations_run, "precision": result.precision})
    return 0


if __name__ == "__main__":
    sys.exit(main())
