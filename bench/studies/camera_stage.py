"""Which denoising stage suits a camera's JPEG noise after the ``fast-camera`` fit?

    python bench/studies/camera_stage.py --data ../shared/data [--step 8]
    python bench/studies/camera_stage.py --data ../shared/data --summary

``real_noise_recipe.py`` chose the fit length and one white level for every colour plane. Camera noise is not
the same in every plane: the JPEG keeps chroma at half resolution and quantises it harder. This study fits each
PolyU *tuning* pair once (the pairs ``bench/real_noise.py`` does not report, every ``--step``-th; 256x256 centre
crops cut as that benchmark cuts them; ``fast`` for ``CAMERA_STEPS`` steps, seed 0, as ``fast-camera`` fits),
keeps the fit in ``--cache``, and gives it to the stage with variants: the luminance level of ``LEVELS``, the
chroma planes' level that times ``RATIOS`` (in the collaborative passes, which work in the opponent colour space;
the Wiener mixture keeps the luminance level), ``PASSES`` collaborative passes and the mixture's share of
``SHARES``; and, at the one level for every plane, a pilot that is the fit averaged with the stage's own result
from the noisy image alone (the row ``blend``: two estimates that err in different places). Scaling a plane of both the noisy image and the pilot by ``1 / r`` before a Wiener pass is the same
as filtering it at ``r`` times the level (the gain is ``P / (P + sigma^2)``; each plane is aggregated by itself),
so the study needs no change to the library. Rows (PSNR against the mean image) go to
``bench/results/camera_stage.json`` as pairs finish; ``--summary`` prints the mean per variant, best first.
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import real_noise
import torch
from real_noise_recipe import tuning_pairs

from deepprior import api
from deepprior.blockmatch import collaborative_wiener
from deepprior.presets import CAMERA_STEPS
from deepprior.refine import into_colours, out_of_colours, wiener_mix

LEVELS = (12, 16, 20)
RATIOS = (0.5, 0.75, 1.0, 1.5)
PASSES = (3, 4)
SHARES = (0.25, 0.5, 0.75)


def passes(y: torch.Tensor, pilot: torch.Tensor, sigma: float, ratio: float, count: int) -> list[torch.Tensor]:
    """The collaborative passes' outputs, one per pass, the chroma planes filtered at ``ratio`` times ``sigma``."""
    yc, _, matrix = into_colours(y, pilot, "opponent")
    scale = torch.tensor([1.0, 1 / ratio, 1 / ratio]).view(1, 3, 1, 1)
    outputs, current = [], pilot
    for _ in range(count):
        _, pc, _ = into_colours(y, current, "opponent")
        out, _ = collaborative_wiener(yc * scale, pc * scale, sigma, divergence=False)
        current = out_of_colours(out / scale, matrix).clamp(0, 1)
        outputs.append(current)
    return outputs


def fitted(data: Path, name: str, cache: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """The noisy crop, its ground truth and the fit (cached), as ``(1, 3, H, W)``, and the fit's seconds."""
    with tempfile.TemporaryDirectory(prefix="deepprior-real-") as tmp:
        _, noisy, clean = real_noise.crop_pair(data, name, 256, Path(tmp))
    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].float()
    truth = torch.from_numpy(clean).permute(2, 0, 1)[None].float()
    path = cache / f"{name}-{CAMERA_STEPS}.pt"
    if path.exists():
        saved = torch.load(path)
        return y, truth, saved["pilot"], saved["seconds"]
    start = time.perf_counter()
    _, result = api.restore(noisy, None, preset="fast", sigma=0.01, iterations=CAMERA_STEPS, stop="fixed",
                            refine=False, seed=0, progress=False, return_result=True)
    seconds = time.perf_counter() - start
    pilot = result.fitted.float().cpu()
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"pilot": pilot, "seconds": seconds}, path)
    return y, truth, pilot, seconds


def measure(data: Path, name: str, cache: Path) -> dict:
    y, truth, pilot, seconds = fitted(data, name, cache)

    def psnr(t: torch.Tensor) -> float:
        return round(float(10 * np.log10(1 / float(((t.clamp(0, 1) - truth) ** 2).mean()))), 3)

    grid = {"fit": psnr(pilot)}
    for level in LEVELS:
        sigma = level / 255
        mixture = wiener_mix(y, pilot, sigma).image.float()
        grid[f"{level} mixture"] = psnr(mixture)
        for ratio in RATIOS:
            outputs = passes(y, mixture, sigma, ratio, max(PASSES))
            for count, share in itertools.product(PASSES, SHARES):
                grid[f"{level} {ratio} {count} {share}"] = psnr(share * mixture + (1 - share) * outputs[count - 1])
        alone = wiener_mix(y, y, sigma).image.float()
        alone = passes(y, alone, sigma, 1.0, 3)[-1]  # the stage from the noisy image alone
        grid[f"{level} alone"] = psnr(alone)
        mixture = wiener_mix(y, 0.5 * (pilot + alone), sigma).image.float()
        outputs = passes(y, mixture, sigma, 1.0, max(PASSES))
        for count, share in itertools.product(PASSES, SHARES):
            grid[f"{level} blend {count} {share}"] = psnr(share * mixture + (1 - share) * outputs[count - 1])
    return {"image": name, "noisy": psnr(y), "fit_seconds": round(seconds, 1), "psnr": grid}


def summary(rows: list[dict], top: int = 15) -> int:
    keys = rows[0]["psnr"].keys()
    means = {k: float(np.mean([r["psnr"][k] for r in rows])) for k in keys}
    print(f"{len(rows)} pairs; noisy {np.mean([r['noisy'] for r in rows]):.3f}, fit {means['fit']:.3f}")
    print("level ratio passes share: mean PSNR, lowest gain over the noisy input")
    for key in sorted(means, key=means.get, reverse=True)[:top]:
        low = min(r["psnr"][key] - r["noisy"] for r in rows)
        print(f"  {key:18s} {means[key]:.3f}  {low:+.2f}")
    reference = "16 1.0 3 0.5"
    if reference in means:
        print(f"  {reference:18s} {means[reference]:.3f}  (the recipe of real_noise_recipe.py)")
    return 0


def run(description: str, results_name: str, measure_pair: Callable[[Path, str, Path], dict],
        summarise: Callable[[list[dict]], int], report: Callable[[dict], str]) -> int:
    """The command line of a study over the tuning pairs' cached fits (this one and ``camera_level.py``): measure
    each pair not yet in ``bench/results/RESULTS_NAME`` with ``measure_pair(data, name, cache)``, printing
    ``report(row)``, or with ``--summary`` print ``summarise(rows)``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--step", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "deepprior-camera-fits")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "results" / results_name)
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    results = harness.Results(args.out)
    if args.summary:
        return summarise(results.rows)
    for name in tuning_pairs(args.data, args.step):
        if not results.done(name):
            row = measure_pair(args.data, name, args.cache)
            results.add(row)
            print(report(row), flush=True)
    return 0


def main() -> int:
    def report(row: dict) -> str:
        best = max(row["psnr"], key=row["psnr"].get)
        return f"{row['image']}: noisy {row['noisy']}, best {best} {row['psnr'][best]}"

    return run(__doc__, "camera_stage.json", measure, summary, report)


if __name__ == "__main__":
    raise SystemExit(main())
