"""A gallery of real noisy photos with no ground truth (RNI15), restored by the default command, for the eye.

    python bench/real_gallery.py --data ../shared/data --out docs/gallery/rni15
    python bench/real_gallery.py --data ../shared/data --out docs/gallery/rni15 --only Dog Frog

For each photo of ``real/rni15`` (or those named) it cuts the centre ``--size`` x ``--size`` (on the JPEG block
grid; a JPEG keeps its own quantisation tables and chroma subsampling, so the tool still sees a JPEG), runs
``deepprior denoise crop -o out.png`` with no option as a child process, and writes ``OUT/NAME.png``
("noisy | deepprior | difference x4 around grey") and a row in ``OUT/gallery.json``: the noise model the command
chose and its one line, the recipe, the steps, why it stopped and the seconds from start to written file.
``--markdown`` prints the table for ``docs/noise.md``. Finished photos are skipped on a rerun.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import harness
import numpy as np
from PIL import Image as PILImage
from PIL import JpegImagePlugin
from real_noise import centre_box

from deepprior.imageio import read_image
from deepprior.report import comparison_figure


def crop(source: Path, size: int, folder: Path) -> Path:
    """The centre crop of ``source`` in ``folder``, in the source's format (a JPEG with its own tables)."""
    with PILImage.open(source) as photo:
        side = min(size, *photo.size) // 16 * 16
        box = centre_box(*photo.size, side)
        if photo.format == "JPEG":
            path = folder / f"{source.stem}.jpg"
            photo.convert("RGB").crop(box).save(path, qtables=photo.quantization,
                                                subsampling=JpegImagePlugin.get_sampling(photo))
        else:
            path = folder / f"{source.stem}.png"
            photo.convert("RGB").crop(box).save(path)
    return path


def describe_noise(noise: dict[str, Any]) -> str:
    """The noise model of a record in a few words."""
    model = noise.get("model", "-")
    if model == "gaussian":
        return f"Gaussian, sigma {noise['sigma_255']:.1f} (estimated)"
    if model == "camera-jpeg":
        return (f"camera JPEG q{noise['jpeg_quality']} (white estimate {noise['white_estimate_255']:.1f}), "
                f"filtered as {noise['level_255']:.0f}")
    if model == "impulse":
        return f"salt-and-pepper, {noise['fraction'] * 100:.1f} %"
    return model


def run(source: Path, size: int, out: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="deepprior-rni15-") as tmp:
        path = crop(source, size, Path(tmp))
        noisy = read_image(path).pixels
        seconds, output, record = harness.cli_denoise(path, Path(tmp))
    difference = np.clip(0.5 + 4 * (output - noisy), 0, 1)
    comparison_figure(out / f"{source.stem}.png", [("noisy", noisy), ("deepprior denoise", output),
                                                   ("difference x4", difference)])
    return {"image": source.stem, "file": source.name, "size": list(noisy.shape[:2]), "seconds": round(seconds, 1),
            "preset": record["preset"], "steps": record["iterations_run"], "stop_reason": record["stop_reason"],
            "noise": record["noise"], "noise_line": describe_noise(record["noise"])}


def markdown(rows: list[dict[str, Any]], out: Path, docs: Path) -> list[str]:
    """The table for a page in ``docs``, each photo linked to its figure."""
    lines = ["| photo | crop | noise model chosen | recipe | steps | time (s) |", "|---|---|---|---|---|---|"]
    for row in rows:
        link = Path(os.path.relpath((out / f"{row['image']}.png").resolve(), docs.resolve())).as_posix()
        lines.append(f"| [{row['file']}]({link}) | {row['size'][1]}x{row['size'][0]} | {row['noise_line']} | "
                     f"`{row['preset']}` | {row['steps']} | {row['seconds']:.0f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--only", nargs="+", help="photo names without extension")
    parser.add_argument("--markdown", action="store_true", help="print the table for docs/noise.md and stop")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = harness.Results(args.out / "gallery.json")
    if args.markdown:
        print("\n".join(markdown(results.rows, args.out, Path(__file__).parents[1] / "docs")))
        return 0
    photos = sorted(p for p in (args.data / "real" / "rni15").iterdir() if p.suffix.lower() in (".png", ".jpg"))
    if args.only:
        photos = [p for p in photos if p.stem in args.only]
    for photo in photos:
        if results.done(photo.stem):
            continue
        row = run(photo, args.size, args.out)
        results.add(row)
        print(f"{row['image']}: {row['noise_line']}, {row['preset']}, {row['steps']} steps, {row['seconds']} s",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
