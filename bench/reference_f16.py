"""Compare the 'denoise' preset with the original code's measured trajectory.

F16 centre crop, Gaussian noise sigma = 25 clipped to [0, 1], the paper's
denoising recipe; prints PSNR (raw and averaged output) next to the original
code's at the same steps and writes JSON.

    python bench/reference_f16.py --data ../shared/data --size 128 --iterations 300
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from deepprior.degrade import add_noise, center_crop
from deepprior.engine import run
from deepprior.imageio import read_image, to_tensor
from deepprior.metrics import psnr
from deepprior.presets import get_preset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="the shared data folder")
    parser.add_argument("--size", type=int, default=128, choices=(128, 256))
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/reference_f16.json"))
    args = parser.parse_args()

    reference = json.loads((args.data / f"reference/ref_f16_{args.size}_sigma25.json").read_text())
    ref_rows = {row["it"]: row for row in reference["rows"]}
    clean = center_crop(read_image(args.data / "set9/f16.png").pixels, args.size, args.size)
    runs = []
    for seed in args.seeds:
        noisy = add_noise(clean, 25 / 255, seed=seed)
        result, _, _ = run(
            to_tensor(noisy), None, get_preset("denoise"), image_size=clean.shape[:2],
            iterations=args.iterations, seed=seed, device="cpu", ground_truth=to_tensor(clean), progress=True,
            precision="fp32",  # the original's arithmetic
        )
        runs.append({"seed": seed, "noisy_psnr": psnr(clean, noisy), "history": result.history,
                     "seconds_per_iteration": result.seconds / result.iterations_run})
        print(f"seed {seed}: noisy {psnr(clean, noisy):.2f} dB, {result.seconds / result.iterations_run:.3f} s/it")
        print(f"{'step':>6} {'ours raw':>9} {'ours avg':>9} {'orig raw':>9} {'orig avg':>9}")
        for row in result.history:
            it = row["iteration"]
            if it % 50 == 0 and it in ref_rows:
                ref = ref_rows[it]
                print(f"{it:6d} {row['psnr_raw']:9.2f} {row['psnr_average']:9.2f} {ref['psnr']:9.2f} {ref['psnr_avg']:9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"size": args.size, "iterations": args.iterations, "machine": platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": runs}
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
