"""Can the denoising stage tell, without the ground truth, how many collaborative passes an image wants?

    python bench/studies/stage_choice.py --data ../shared/data --every 6 [--check f16]

For each tuning photo (CBSD68 in ``tune/cbsd68``, sorted by name, every ``--every``-th; 256x256 centre crops)
with Gaussian noise of sigma 25 (seed 0): the default fit with no stage (seed 0; fits are cached in ``--cache``),
then the Wiener mixture and four collaborative passes one after another. For each stage output it records the
PSNR, and two risk estimates that need no ground truth:

- ``sure_fixed``: SURE with each filter's pilot held fixed (the divergences the filters compute themselves);
- ``sure_chain``: SURE with the divergence of the whole chain from the noisy image to that output, the fit
  held fixed, by one random probe (Monte-Carlo SURE, Ramani et al. 2008): the chain is run again on the noisy
  image plus ``eps`` times a Rademacher field.

and what choosing each way would give: the stage with the lowest estimate, and the SURE-weighted convex mixture
of all five outputs (``sure_weights``). Both estimates came out far too low (negative risks) and never chose
well: each pilot, the network's fit above all, has taken up part of the noise, which holding it fixed ignores.
So each row also has ``blend``: the PSNR of ``share`` x the mixture + (1 - ``share``) x pass k, for k = 1..4 and
``share`` in ``SHARES``. ``--whole`` takes whole tuning photos instead of crops, so that the fit is the one the
pixel budget cuts short, as on full-size photos. ``--summary`` prints the tuning photos' mean per (k, share). ``--check`` adds table images (``f16``: set9's F16 256x256 crop) that
are printed and recorded but are not for choosing. Rows go to ``bench/results/stage_choice.json`` as they finish.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch

from deepprior import api
from deepprior.blockmatch import collaborative_refine
from deepprior.noise import estimate_sigma
from deepprior.refine import sure_weights, wiener_mix

PASSES = 4
SHARES = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75)


def chain(y: torch.Tensor, fitted: torch.Tensor, sigma: float) -> list[torch.Tensor]:
    """The stage's outputs after the mixture and after each pass, piloted by ``fitted`` (held fixed)."""
    outputs = [wiener_mix(y, fitted, sigma).image.float()]
    for _ in range(PASSES):
        outputs.append(collaborative_refine(y, outputs[-1], sigma))
    return outputs


def fixed_pilot_sure(y: torch.Tensor, outputs: list[torch.Tensor], sigma: float, mixture_risk: float) -> list[float]:
    """SURE per value of each output with its own pilot held fixed."""
    from deepprior.blockmatch import collaborative_wiener
    from deepprior.refine import into_colours

    risks = [mixture_risk]
    for before, after in itertools.pairwise(outputs):
        planes, pilot, _ = into_colours(y, before, "opponent")
        _, divergence = collaborative_wiener(planes, pilot, sigma)
        n = y.numel()
        risks.append(float(((after - y) ** 2).sum()) / n - sigma**2 + 2 * sigma**2 * divergence / n)
    return risks


def measure(data: Path, folder: str, name: str, cache: Path, crop: int | None = 256) -> dict:
    clean = harness.load_image(data, folder, name, crop=crop)
    noisy = harness.noisy(clean, 25, seed=0)
    path = cache / f"{folder.replace('/', '_')}_{name}{'' if crop == 256 else '_whole'}.pt"
    if path.exists():
        fitted, fit_seconds, steps = torch.load(path)
    else:
        start = time.perf_counter()
        _, result = api.denoise(noisy, seed=0, refine=False, return_result=True, progress=False)
        fitted, fit_seconds, steps = result.fitted.float(), time.perf_counter() - start, result.iterations_run
        cache.mkdir(parents=True, exist_ok=True)
        torch.save((fitted, fit_seconds, steps), path)
    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].float()
    truth = torch.from_numpy(clean).permute(2, 0, 1)[None].float()
    sigma = estimate_sigma(noisy)
    n = y.numel()

    def psnr(t: torch.Tensor) -> float:
        return float(10 * np.log10(1 / float(((t.clamp(0, 1) - truth) ** 2).mean())))

    start = time.perf_counter()
    outputs = chain(y, fitted, sigma)
    stage_seconds = time.perf_counter() - start
    mixture_risk = wiener_mix(y, fitted, sigma).risk
    fixed = fixed_pilot_sure(y, outputs, sigma, mixture_risk)
    eps = sigma / 10
    probe = torch.randint(0, 2, y.shape, generator=torch.Generator().manual_seed(1)).float() * 2 - 1
    start = time.perf_counter()
    moved = chain(y + eps * probe, fitted, sigma)
    probe_seconds = time.perf_counter() - start
    divergences = [float((probe * (b - a)).sum()) / eps for a, b in zip(outputs, moved)]
    chained = [float(((x - y) ** 2).sum()) / n - sigma**2 + 2 * sigma**2 * d / n for x, d in zip(outputs, divergences)]
    gram = torch.stack([(x - y).flatten().double() for x in outputs])
    weights, _ = sure_weights(gram @ gram.T, torch.tensor(divergences, dtype=torch.float64), sigma**2, n)
    mixed = sum(float(w) * x for w, x in zip(weights, outputs))
    stages = ["mixture"] + [f"pass {k}" for k in range(1, PASSES + 1)]
    psnrs = [psnr(x) for x in outputs]
    to_db = [round(-10 * np.log10(max(r, 1e-12)), 3) for r in fixed], [round(-10 * np.log10(max(r, 1e-12)), 3)
                                                                        for r in chained]
    blend = {f"{k} {share}": round(psnr(share * outputs[0] + (1 - share) * outputs[k]), 3)
             for k in range(1, PASSES + 1) for share in SHARES}
    return {"image": f"{folder}/{name}{'' if crop == 256 else ' whole'}", "blend": blend, "sigma": round(sigma * 255, 3), "fit": round(psnr(fitted), 3),
            "steps": steps, "fit_seconds": round(fit_seconds, 1), "stage_seconds": round(stage_seconds, 1),
            "probe_seconds": round(probe_seconds, 1), "stages": stages, "psnr": [round(p, 3) for p in psnrs],
            "sure_fixed_db": to_db[0], "sure_chain_db": to_db[1],
            "best": stages[int(np.argmax(psnrs))], "by_fixed": stages[int(np.argmin(fixed))],
            "by_chain": stages[int(np.argmin(chained))], "psnr_by_fixed": round(psnrs[int(np.argmin(fixed))], 3),
            "psnr_by_chain": round(psnrs[int(np.argmin(chained))], 3), "chain_weights": [round(float(w), 3) for w in weights],
            "psnr_chain_mix": round(psnr(mixed), 3)}


def summary(rows: list[dict]) -> int:
    """Mean PSNR of the tuning photos per (passes, share), and each checked image's, one line per pass count."""
    tune = [r for r in rows if r["image"].startswith("tune/") and "blend" in r and "whole" not in r["image"]]
    whole = [r for r in rows if r["image"].endswith(" whole")]
    checks = [r for r in rows if not r["image"].startswith("tune/") and "blend" in r]
    print(f"{len(tune)} tuning photos; columns: share of the mixture {', '.join(map(str, SHARES))}")
    for k in range(1, PASSES + 1):
        means = [np.mean([r["blend"][f"{k} {share}"] for r in tune]) for share in SHARES]
        line = f"pass {k}: tune " + " ".join(f"{m:.3f}" for m in means)
        for r in checks:
            line += f" | {r['image']} " + " ".join(f"{r['blend'][f'{k} {share}']:.2f}" for share in SHARES)
        print(line)
    print("mixture alone: tune " + f"{np.mean([r['psnr'][0] for r in tune]):.3f}")
    for r in whole:
        print(f"{r['image']} ({r['steps']} steps): " + "; ".join(
            f"pass {k}: " + " ".join(f"{r['blend'][f'{k} {share}']:.2f}" for share in SHARES) for k in (1, 3)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--every", type=int, default=6)
    parser.add_argument("--whole", nargs="*", default=[], help="whole tuning photos instead (their fits are cut "
                        "short by the pixel budget), e.g. 101085 101087 102061")
    parser.add_argument("--check", nargs="*", default=[], help="table images to check (not for choosing)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/deepprior-stage-fits"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "results" / "stage_choice.json")
    parser.add_argument("--summary", action="store_true", help="print the mean blend table and exit")
    args = parser.parse_args()
    results = harness.Results(args.out)
    if args.summary:
        return summary(results.rows)
    names = sorted(p.stem for p in (args.data / "tune" / "cbsd68").glob("*.png"))[:: args.every]
    todo = [("set9", c, 256) for c in args.check] + [("tune/cbsd68", n, 256) for n in names]
    if args.whole:
        todo = [("tune/cbsd68", n, None) for n in args.whole]
    for folder, name, crop in todo:
        key = f"{folder}/{name}{'' if crop == 256 else ' whole'}"
        if results.done(key) and "blend" in results.get(key):
            continue
        row = measure(args.data, folder, name, args.cache, crop)
        results.add(row)
        print(f"{row['image']}: fit {row['fit']} | " + " ".join(f"{p:.2f}" for p in row["psnr"])
              + f" | best {row['best']}, by fixed {row['by_fixed']} {row['psnr_by_fixed']}, by chain "
              f"{row['by_chain']} {row['psnr_by_chain']}, chain mix {row['psnr_chain_mix']} | stage "
              f"{row['stage_seconds']} s, probe {row['probe_seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
