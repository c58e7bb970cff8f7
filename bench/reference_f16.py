"""Compare the 'denoise' preset with the original code's measured trajectory.

F16 centre crop, Gaussian noise sigma = 25 clipped to [0, 1] (noise seed =
the run's seed), the paper's denoising recipe in fp32; prints PSNR (raw and
averaged output) next to the original code's at the same steps and writes
JSON: a summary per seed in ``--out`` (the PSNR after the last step and the
best averaged one), every step's loss and PSNR in
``NAME.histories.json.gz`` beside it. Resumable: seeds already in ``--out``
are not run again.

    python bench/reference_f16.py --data ../shared/data --size 128 --iterations 300
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import harness
import torch

from deepprior.metrics import psnr


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
    clean = harness.load_image(args.data, "set9", "f16", crop=args.size)
    results = harness.Results(args.out, key=("seed",), rows="runs", histories=("history",))
    results.require(size=args.size, iterations=args.iterations)
    results.data.update(machine=platform.processor() or platform.machine(), torch=torch.__version__,
                        threads=torch.get_num_threads())
    results.data["runs"] = results.data.pop("runs")  # the runs last, as before
    for seed in args.seeds:
        if results.done(seed):
            continue
        noisy = harness.noisy(clean, 25, seed=seed)
        result = harness.fit(noisy, None, "denoise", iterations=args.iterations, seed=seed, device="cpu",
                             ground_truth=clean, progress=True, precision="fp32")  # fp32: the original's arithmetic
        last = result.history[-1]
        best = max(result.history, key=lambda h: h["psnr_average"])
        results.add({"seed": seed, "noisy_psnr": psnr(clean, noisy), "history": result.history,
                     "seconds_per_iteration": result.seconds / result.iterations_run,
                     "final": {"psnr_raw": last["psnr_raw"], "psnr_average": last["psnr_average"]},
                     "best_average": [best["iteration"], best["psnr_average"]]})
        print(f"seed {seed}: noisy {psnr(clean, noisy):.2f} dB, {result.seconds / result.iterations_run:.3f} s/it")
        print(f"{'step':>6} {'ours raw':>9} {'ours avg':>9} {'orig raw':>9} {'orig avg':>9}")
        for row in result.history:
            it = row["iteration"]
            if it % 50 == 0 and it in ref_rows:
                ref = ref_rows[it]
                print(f"{it:6d} {row['psnr_raw']:9.2f} {row['psnr_average']:9.2f} {ref['psnr']:9.2f} {ref['psnr_avg']:9.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
