"""Probe a recipe variant on one Set9 crop: where ``auto`` stops, its PSNR, the run's best step, seconds per step.

For choosing a ``fast`` preset by measurement. The noisy image is made as in
``bench/quality.py`` (same seed, clipped); ``auto`` uses the estimated sigma,
as the command line does. Changes are JSON: FitConfig fields, plus ``widths``
(the encoder/decoder widths of the skip network), ``input_kind`` and
``input_channels``.

    python bench/recipe_probe.py --data ../shared/data --image f16 --crop 128 \\
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

import torch

from deepprior.degrade import add_noise, center_crop
from deepprior.engine import run
from deepprior.fitting import Oracle
from deepprior.imageio import from_tensor, read_image, to_tensor
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    changes = json.loads(args.changes)
    preset = get_preset(args.base)
    if "widths" in changes:
        widths = tuple(changes.pop("widths"))
        preset = replace(preset, net_options=MappingProxyType(dict(
            preset.net_options, channels_down=widths, channels_up=widths, channels_skip=(4,) * len(widths))))
    top = {k: changes.pop(k) for k in list(changes) if k in ("input_kind", "input_channels")}
    preset = replace(preset, fit=replace(preset.fit, **changes), **top)
    clean = center_crop(read_image(args.data / "set9" / f"{args.image}.png").pixels, args.crop, args.crop)
    noisy = add_noise(clean, 25 / 255, seed=0)
    oracle = Oracle()
    t0 = time.perf_counter()
    result, _, _ = run(to_tensor(noisy), None, preset, image_size=clean.shape[:2], seed=0, sigma=estimate_sigma(noisy),
                       ground_truth=to_tensor(clean), callbacks=[oracle])
    best_step, best = oracle.selection()
    auto = psnr(clean, from_tensor(result.output.cpu()))
    top_psnr = psnr(clean, from_tensor(best.cpu()))
    print(f"{args.image} {args.crop} {args.base} {args.changes}: auto {auto:.2f} @ {result.iterations_run}, "
          f"best {top_psnr:.2f} @ {best_step}, "
          f"{time.perf_counter() - t0:.0f} s, {result.seconds / result.iterations_run:.3f} s/step ({result.precision})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
