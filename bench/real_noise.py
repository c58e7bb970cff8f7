"""Real camera noise: the default denoiser on PolyU photo pairs, with the classical baselines in the same run.

    python bench/real_noise.py --data ../shared/data
    python bench/real_noise.py --data ../shared/data --summary      # print what is recorded

The pairs of ``real/polyu`` (``NAME_real.JPG`` one shot, ``NAME_mean.JPG`` the mean of many, the ground truth)
sorted by name, every 4th, 25 of them; the centre 256x256 of each. The crop of the noisy shot is saved as a JPEG
again, with the file's own quantisation tables and chroma subsampling, on its 16-pixel block grid: decoding it
gives the same pixels within 2 of 255 (about 79 dB), and a reader still sees a JPEG of the quality it was, as a
user's photo would be.

For each pair it records the noisy input's PSNR and these, each timed (PSNR and SSIM on all channels):

- **CBM3D at its own estimate**: ``bm3d.bm3d_rgb`` at scikit-image's wavelet noise estimate (what a user of
  CBM3D without a noise level gets);
- **CBM3D, oracle sigma**: the best of the grid {2, 3, 4, 6, 8, 10, 12, 15, 20, 25, 30} (of 255), chosen per
  image with the ground truth, which no user has: the bar to clear;
- **NLM** at scikit-image's estimate;
- **deepprior's default**: ``deepprior denoise crop.jpg -o out.png`` with no option, run as a child process
  and timed from start to written file; its PSNR, steps, why it stopped, and the noise model it recorded.

A row is written as soon as a pair is done and finished pairs are skipped on a rerun.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
from PIL import Image as PILImage
from PIL import JpegImagePlugin

from deepprior.imageio import read_image

ORACLE_GRID = (2, 3, 4, 6, 8, 10, 12, 15, 20, 25, 30)


def pairs(data: Path, every: int = 4, count: int = 25) -> list[str]:
    """The benchmark's pair names: sorted, every ``every``-th, the first ``count``."""
    folder = data / "real" / "polyu"
    names = sorted(p.name.removesuffix("_real.JPG") for p in folder.glob("*_real.JPG"))
    if not names:
        raise SystemExit(f"no *_real.JPG pairs in {folder}")
    return names[::every][:count]


def centre_box(width: int, height: int, size: int, grid: int = 16) -> tuple[int, int, int, int]:
    """A ``size`` x ``size`` box near the centre, its corner on the JPEG block grid."""
    if min(width, height) < size:
        raise SystemExit(f"the photos are {width}x{height}, smaller than the {size}x{size} crop")
    left = (width - size) // 2 // grid * grid
    top = (height - size) // 2 // grid * grid
    return left, top, left + size, top + size


def crop_pair(data: Path, name: str, size: int, folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write the noisy crop as a JPEG with the shot's own tables; return its path, its pixels as the tool reads
    them and the ground-truth crop, both ``(H, W, 3)`` floats in [0, 1]."""
    source = data / "real" / "polyu"
    with PILImage.open(source / f"{name}_real.JPG") as shot:
        box = centre_box(*shot.size, size)
        path = folder / f"{name}.jpg"
        shot.convert("RGB").crop(box).save(path, qtables=shot.quantization,
                                           subsampling=JpegImagePlugin.get_sampling(shot))
    with PILImage.open(source / f"{name}_mean.JPG") as mean:
        clean = np.asarray(mean.convert("RGB").crop(box), dtype=np.float32) / 255
    return path, read_image(path).pixels, clean


def baselines(noisy: np.ndarray, clean: np.ndarray) -> dict[str, dict[str, Any]]:
    """The classical rows: CBM3D at scikit-image's estimate, CBM3D's oracle sigma over the grid, NLM."""
    import bm3d
    from skimage.restoration import denoise_nl_means, estimate_sigma

    def scored(estimate: np.ndarray, start: float, **extra: Any) -> dict[str, Any]:
        psnr, ssim = harness.score("denoise", clean, np.clip(estimate, 0, 1), 1)
        return {"psnr": round(psnr, 4), "ssim": round(ssim, 4), "seconds": round(time.perf_counter() - start, 2),
                **extra}

    out: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    sigma = float(np.mean(estimate_sigma(noisy, channel_axis=-1)))
    out["CBM3D, own estimate"] = scored(bm3d.bm3d_rgb(noisy, max(sigma, 1e-4)), start, sigma_255=round(sigma * 255, 3))
    grid = {}
    start = time.perf_counter()
    for level in ORACLE_GRID:
        grid[level] = harness.score("denoise", clean, np.clip(bm3d.bm3d_rgb(noisy, level / 255), 0, 1), 1)
    best = max(grid, key=lambda level: grid[level][0])
    out["CBM3D, oracle sigma"] = {"psnr": round(grid[best][0], 4), "ssim": round(grid[best][1], 4), "sigma_255": best,
                                  "seconds": round((time.perf_counter() - start) / len(ORACLE_GRID), 2),
                                  "grid": {str(k): round(v[0], 4) for k, v in grid.items()}}
    start = time.perf_counter()
    out["NLM"] = scored(denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5,
                                         patch_distance=6, channel_axis=-1), start, sigma_255=round(sigma * 255, 3))
    return out


def measure(data: Path, name: str, size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="deepprior-real-") as tmp:
        source, noisy, clean = crop_pair(data, name, size, Path(tmp))
        psnr, ssim = harness.score("denoise", clean, noisy, 1)
        row: dict[str, Any] = {"image": name, "size": size, "jpeg_quality": read_image(source).jpeg_quality,
                               "noisy": {"psnr": round(psnr, 4), "ssim": round(ssim, 4)},
                               "residual_std_255": round(float((noisy - clean).std() * 255), 3),
                               "baselines": baselines(noisy, clean)}
        seconds, output, record = harness.cli_denoise(source, Path(tmp))
    psnr, ssim = harness.score("denoise", clean, output, 1)
    row["default"] = {"psnr": round(psnr, 4), "ssim": round(ssim, 4), "seconds": round(seconds, 1),
                      "steps": record["iterations_run"], "stop_reason": record["stop_reason"],
                      "preset": record["preset"], "noise": record.get("noise")}
    return row


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """The recorded rows as a markdown table with the means."""
    methods = sorted({m for row in rows for m in row["baselines"]})
    head = ["pair", "noisy", *methods, "deepprior", "time (s)", "noise model"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        d = row["default"]
        noise = d.get("noise") or {}
        cells = [row["image"], f"{row['noisy']['psnr']:.2f}",
                 *(f"{row['baselines'][m]['psnr']:.2f}" for m in methods),
                 f"{d['psnr']:.2f}", f"{d['seconds']:.0f}", str(noise.get("model", "-"))]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        means = [f"**{np.mean([r['noisy']['psnr'] for r in rows]):.2f}**",
                 *(f"**{np.mean([r['baselines'][m]['psnr'] for r in rows]):.2f}**" for m in methods),
                 f"**{np.mean([r['default']['psnr'] for r in rows]):.2f}**",
                 f"{max(r['default']['seconds'] for r in rows):.0f} (most)", ""]
        lines.append("| **mean** | " + " | ".join(means) + " |")
        below = [r["image"] for r in rows if r["default"]["psnr"] < r["noisy"]["psnr"]]
        lines += ["", f"{len(rows)} pairs; below their noisy input: {', '.join(below) if below else 'none'}."]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the shared data folder (holds real/polyu)")
    parser.add_argument("--crop", type=int, default=256, help="centre crop size (default 256)")
    parser.add_argument("--only", help="measure this pair only (a name of the subset)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/real_noise.json"))
    parser.add_argument("--summary", action="store_true", help="print the recorded table and exit")
    args = parser.parse_args()
    results = harness.Results(args.out, key=("image", "size"),
                              fields={"protocol": "PolyU pairs sorted by name, every 4th, 25; centre crops; the "
                                      "noisy crop re-saved with its own JPEG tables", "machine": harness.machine()})
    if not args.summary:
        if args.data is None:
            parser.error("--data is needed to measure")
        for name in pairs(args.data):
            if (args.only and name != args.only) or results.done(name, args.crop):
                continue
            row = measure(args.data, name, args.crop)
            results.add(row)
            print(name, f"noisy {row['noisy']['psnr']:.2f}",
                  *(f"{m} {b['psnr']:.2f}" for m, b in row["baselines"].items()),
                  f"deepprior {row['default']['psnr']:.2f} in {row['default']['seconds']:.0f} s", flush=True)
    print("\n".join(summary([r for r in results.rows if r["size"] == args.crop])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
