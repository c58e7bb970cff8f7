"""Where automatic stopping would end for several stop factors, and what the Wiener stage makes of each pilot.

One ``fast`` fit per image (sigma estimated, the same noisy image as
``bench/quality.py`` makes with the same seed) runs until the lowest factor's
rule fires; every rule watches the same run, and the average output is kept
at the step where each would have stopped. Each of those pilots then goes
through the default Wiener stage (:func:`deepprior.refine.wiener_mix`).
Results are written after every image; images already in ``--out`` are skipped.

    python bench/studies/stop_factor_study.py --data ../shared/data --crop 128
    python bench/studies/stop_factor_study.py --data ../shared/data --crop 256 --images f16 --seeds 5
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch

from deepprior.fitting import IterationState
from deepprior.fitting.stopping import make_rule
from deepprior.imageio import from_tensor, to_tensor
from deepprior.metrics import psnr
from deepprior.noise import estimate_sigma
from deepprior.presets import get_preset
from deepprior.refine import wiener_mix


def study(clean: np.ndarray, noise_seed: int, net_seed: int, factors: list[float]) -> dict[str, list[float]]:
    """``{factor: [stop step, PSNR after the Wiener stage]}`` for one image and one network seed."""
    noisy = harness.noisy(clean, 25, seed=noise_seed)
    sigma = estimate_sigma(noisy)
    rules = {f: make_rule("auto", sigma=sigma, clipped=True, factor=f) for f in factors}
    pilots: dict[float, tuple[int, torch.Tensor]] = {}

    def watch(state: IterationState) -> bool:
        for factor, rule in rules.items():
            if factor not in pilots and rule(state):
                pilots[factor] = (state.iteration, state.average.clone())
        return len(pilots) == len(rules)  # stop once the lowest factor has fired

    y = to_tensor(noisy)
    harness.fit(y, None, replace(get_preset("fast"), stop_factor=min(factors)), seed=net_seed, sigma=sigma,
                callbacks=[watch], refine=False)
    return {str(f): [step, round(psnr(clean, from_tensor(wiener_mix(y, pilot.cpu(), sigma).image)), 4)]
            for f, (step, pilot) in sorted(pilots.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="the noise's seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[5], help="the network's seeds")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.02, 1.03, 1.04, 1.05, 1.06, 1.08])
    parser.add_argument("--images", nargs="+", default=harness.SET9)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(f"bench/results/stop_factor_study_{args.crop}.json")
    rows = harness.collect_rows(
        args, out, lambda clean, net_seed: {"factors": study(clean, args.seed, net_seed, args.factors)},
        lambda r: f"{r['image']} {r['net_seed']} {json.dumps(r['factors'])}")
    factors = [str(f) for f in args.factors]
    print("| image | seed | " + " | ".join(f"{f}: PSNR @ step" for f in factors) + " |")
    print("|---" * (len(factors) + 2) + "|")
    for r in rows:
        print(f"| {r['image']} | {r['net_seed']} | "
              + " | ".join(f"{r['factors'][f][1]:.3f} @ {r['factors'][f][0]}" for f in factors if f in r["factors"])
              + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
