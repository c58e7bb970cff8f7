"""What real camera noise is like, and what white-noise filters make of it, on PolyU tuning pairs.

The pairs of ``real/polyu`` that ``bench/real_noise.py`` does *not* report (sorted by name, those whose index is
not a multiple of 4), every ``--step``-th of them, centre 256x256 crops (on the 16-pixel JPEG grid). Per pair:

- the noise itself (noisy minus the mean of many shots), per YCbCr plane: standard deviation (0-255), the share of
  it in 8x8 block means, its correlation with the neighbour 1 and 2 pixels away, and its standard deviation where
  the clean image is flattest / most textured (the lowest and highest 30 % of gradient);
- what white-noise estimators read from the noisy image: deepprior's (:func:`deepprior.noise.estimate_sigma`),
  scikit-image's, and deepprior's on the 2x2 and 4x4 pixel-shuffled sub-images (mean of four);
- with ``--filters``: CBM3D and four passes of deepprior's collaborative Wiener filter (the first piloted by the
  noisy image itself, no network) at white sigma 8, 12, 16, 20 and 25, each PSNR against the mean image.

Rows go to ``bench/results/real_noise_probe.json`` as they are done; finished pairs are skipped on a rerun.

    python bench/studies/real_noise_probe.py --data ../shared/data --filters
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import _bench  # noqa: F401  (bench/ on the path)
import harness
import numpy as np
import torch
from PIL import Image as PILImage
from scipy.ndimage import sobel, uniform_filter

from deepprior.blockmatch import collaborative_refine
from deepprior.noise import estimate_sigma

YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
SIGMAS = (8, 12, 16, 20, 25)


def tuning_pairs(data: Path, step: int) -> list[str]:
    names = sorted(p.name.removesuffix("_real.JPG") for p in (data / "real" / "polyu").glob("*_real.JPG"))
    return [name for i, name in enumerate(names) if i % 4 != 0][::step]


def load_pair(data: Path, name: str, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    folder = data / "real" / "polyu"
    with PILImage.open(folder / f"{name}_real.JPG") as shot, PILImage.open(folder / f"{name}_mean.JPG") as mean:
        width, height = shot.size
        left, top = (width - size) // 2 // 16 * 16, (height - size) // 2 // 16 * 16
        box = (left, top, left + size, top + size)
        noisy = np.asarray(shot.convert("RGB").crop(box), dtype=np.float32) / 255
        clean = np.asarray(mean.convert("RGB").crop(box), dtype=np.float32) / 255
    return noisy, clean


def noise_facts(noisy: np.ndarray, clean: np.ndarray) -> dict[str, Any]:
    residual, reference = (noisy - clean) @ YCBCR.T * 255, clean @ YCBCR.T * 255
    facts: dict[str, Any] = {}
    for index, plane in enumerate(("Y", "Cb", "Cr")):
        r = residual[..., index] - residual[..., index].mean()
        size = 8 if index == 0 else 16  # chroma is subsampled 2x2 in these JPEGs
        blocks = r.reshape(r.shape[0] // size, size, r.shape[1] // size, size).mean(axis=(1, 3))
        power = np.abs(np.fft.fft2(r)) ** 2
        autocorrelation = np.real(np.fft.ifft2(power)) / r.size
        smooth = uniform_filter(reference[..., 0], 3)
        gradient = np.hypot(sobel(smooth, 0), sobel(smooth, 1))
        flat, textured = gradient <= np.percentile(gradient, 30), gradient >= np.percentile(gradient, 70)
        facts[plane] = {"std": round(float(r.std()), 3), "block_mean_std": round(float(blocks.std()), 3),
                        "correlation_1": round(float(autocorrelation[0, 1] / autocorrelation[0, 0]), 3),
                        "correlation_2": round(float(autocorrelation[0, 2] / autocorrelation[0, 0]), 3),
                        "std_flat": round(float(r[flat].std()), 3), "std_textured": round(float(r[textured].std()), 3)}
    return facts


def estimates(noisy: np.ndarray) -> dict[str, float]:
    from skimage.restoration import estimate_sigma as skimage_sigma

    out = {"deepprior": estimate_sigma(noisy) * 255,
           "scikit-image": float(np.mean(skimage_sigma(noisy, channel_axis=-1))) * 255}
    for stride in (2, 4):
        subs = [noisy[i::stride, j::stride] for i in range(stride) for j in range(stride)][:4]
        out[f"deepprior, shuffled {stride}x{stride}"] = float(np.mean([estimate_sigma(s) for s in subs])) * 255
    return {k: round(v, 3) for k, v in out.items()}


def filters(noisy: np.ndarray, clean: np.ndarray) -> dict[str, dict[str, float]]:
    import bm3d

    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].contiguous()
    out: dict[str, dict[str, float]] = {"CBM3D": {}, "collaborative x4": {}}
    for level in SIGMAS:
        out["CBM3D"][str(level)] = round(harness.score("denoise", clean, np.clip(bm3d.bm3d_rgb(noisy, level / 255),
                                                                                  0, 1), 1)[0], 4)
        estimate = y
        for _ in range(4):
            estimate = collaborative_refine(y, estimate, level / 255)
        out["collaborative x4"][str(level)] = round(
            harness.score("denoise", clean, estimate[0].permute(1, 2, 0).numpy(), 1)[0], 4)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--step", type=int, default=4, help="every STEP-th tuning pair (default 4: 19 pairs)")
    parser.add_argument("--filters", action="store_true", help="also run the filters at the sigma grid (slow)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/real_noise_probe.json"))
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image",), fields={"machine": harness.machine()})
    for name in tuning_pairs(args.data, args.step):
        if results.done(name):
            continue
        noisy, clean = load_pair(args.data, name)
        row: dict[str, Any] = {"image": name, "noisy_psnr": round(harness.score("denoise", clean, noisy, 1)[0], 4),
                               "noise": noise_facts(noisy, clean), "estimates": estimates(noisy)}
        if args.filters:
            row["filters"] = filters(noisy, clean)
        results.add(row)
        y = row["noise"]["Y"]
        best = {m: max(v, key=v.get) for m, v in row.get("filters", {}).items()}
        print(f"{name}: noisy {row['noisy_psnr']:.2f} dB; Y noise std {y['std']:.2f} (flat {y['std_flat']:.2f}, "
              f"textured {y['std_textured']:.2f}), correlation {y['correlation_1']:.2f}; estimates "
              + ", ".join(f"{k} {v:.2f}" for k, v in row["estimates"].items())
              + "".join(f"; {m} best at {s}: {row['filters'][m][s]:.2f}" for m, s in best.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
