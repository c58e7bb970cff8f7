"""Can a camera photo's filtering level be chosen from the photo itself?

    python bench/studies/camera_level.py --data ../shared/data [--step 8]
    python bench/studies/camera_level.py --data ../shared/data --summary

``fast-camera`` filters every camera JPEG at one white-equivalent level (``CAMERA_LEVEL``), chosen on PolyU tuning
pairs, where levels 12 to 20 tie on the mean. Per photo the best level differs (CBM3D's best sigma on the PolyU
benchmark pairs runs from 8 to 30), and a textured scene filtered at the mean's level loses up to a decibel.
This study keeps, for each PolyU *tuning* pair (the pairs ``bench/real_noise.py`` does not report, every
``--step``-th; 256x256 centre crops as that benchmark cuts them), the ``fast-camera`` fit (cached in ``--cache``,
shared with ``camera_stage.py``) and the stage's output at each level of ``LEVELS`` (half the mixture, three
passes), and records per level, beside the PSNR against the mean image, statistics the photo alone gives:

- ``removed_detail``: the correlation of what the next level up removes (this level's output minus the next's)
  with this output's detail (itself minus its 5x5 box mean). Removing noise takes away something unrelated to
  the image's detail; removing texture takes away the detail itself, so the correlation climbs;
- ``residual_std``: the standard deviation of the noisy image minus the output (255 scale).

Rows go to ``bench/results/camera_level.json`` as pairs finish. ``--summary`` prints each pair's best level
and, for thresholds on ``removed_detail``, the mean PSNR of the level reached by walking up while what the next
level removes stays below the threshold, against the fixed level and the per-pair best (an oracle).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import numpy as np
import torch
import torch.nn.functional as F
from camera_stage import fitted, run

from deepprior.blockmatch import collaborative_refine
from deepprior.presets import CAMERA_MIXTURE_SHARE, FAST_DENOISE_PASSES
from deepprior.refine import wiener_mix

LEVELS = (6, 8, 10, 12, 16, 20, 25, 30)
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def stage(y: torch.Tensor, pilot: torch.Tensor, sigma: float) -> torch.Tensor:
    """``fast-camera``'s stage at ``sigma``."""
    mixture = wiener_mix(y, pilot, sigma).image.float()
    refined = mixture
    for _ in range(FAST_DENOISE_PASSES):
        refined = collaborative_refine(y, refined, sigma)
    return CAMERA_MIXTURE_SHARE * mixture + (1 - CAMERA_MIXTURE_SHARE) * refined


def detail(image: torch.Tensor) -> torch.Tensor:
    return image - F.avg_pool2d(F.pad(image, (2, 2, 2, 2), mode="replicate"), 5, 1)


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / ((a.square().sum() * b.square().sum()).sqrt() + 1e-12))


def measure(data: Path, name: str, cache: Path) -> dict:
    y, truth, pilot, _ = fitted(data, name, cache)
    outputs = {level: stage(y, pilot, level / 255) for level in LEVELS}
    per_level = {}
    for low, high in zip(LEVELS, (*LEVELS[1:], None)):
        out = outputs[low]
        row = {"psnr": round(float(10 * np.log10(1 / float(((out.clamp(0, 1) - truth) ** 2).mean()))), 3),
               "residual_std": round(float((y - out).std()) * 255, 3)}
        if high is not None:
            row["removed_detail"] = round(correlation(out - outputs[high], detail(out)), 4)
        per_level[str(low)] = row
    noisy = round(float(10 * np.log10(1 / float(((y - truth) ** 2).mean()))), 3)
    return {"image": name, "noisy": noisy, "levels": per_level}


def summary(rows: list[dict], fixed: int = 16) -> int:
    print(f"{len(rows)} pairs, noisy {np.mean([r['noisy'] for r in rows]):.3f}")
    for r in rows:
        levels = r["levels"]
        best = max(levels, key=lambda k: levels[k]["psnr"])
        cells = " ".join(f"{k}:{v['psnr']:.2f}/{v.get('removed_detail', float('nan')):+.2f}" for k, v in levels.items())
        print(f"  {r['image'][:30]:30s} best {best:>2s} | {cells}")

    def psnr(row: dict, level: str) -> float:
        return row["levels"][level]["psnr"]

    print(f"fixed {fixed}: {np.mean([psnr(r, str(fixed)) for r in rows]):.3f}; per-pair best (oracle): "
          f"{np.mean([max(v['psnr'] for v in r['levels'].values()) for r in rows]):.3f}")
    for threshold in THRESHOLDS:
        chosen = []
        for r in rows:  # walk up the levels while what the next one removes is unlike the output's detail
            level = str(LEVELS[0])
            for low, high in itertools.pairwise(LEVELS):
                if r["levels"][str(low)]["removed_detail"] >= threshold:
                    break
                level = str(high)
            chosen.append(level)
        print(f"removed_detail below {threshold}: {np.mean([psnr(r, k) for r, k in zip(rows, chosen)]):.3f} "
              f"(levels {' '.join(chosen)})")
    return 0


def main() -> int:
    return run(__doc__, "camera_level.json", measure, summary, lambda row: row["image"])


if __name__ == "__main__":
    raise SystemExit(main())
