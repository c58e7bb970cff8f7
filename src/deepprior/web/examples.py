"""Example inputs for the web page, made on the fly from scikit-image's
bundled pictures (so nothing is downloaded and no evaluation image is
shipped): a noisy photo, a small one to upscale, a damaged one with its
mask, a blurred one and a JPEG-blocky one."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from deepprior.degrade import add_noise, downscale
from deepprior.imageio import write_image

__all__ = ["make_examples"]


def _astronaut(size: int = 96) -> np.ndarray:
    from skimage import data

    return (data.astronaut()[30 : 30 + 2 * size : 2, 150 : 150 + 2 * size : 2].astype(np.float32) / 255).copy()


def make_examples(folder: Path) -> list[list[object]]:
    """Write the examples into ``folder``; return rows of
    ``[image, task, mask]`` for ``gr.Examples``."""
    from scipy.ndimage import gaussian_filter

    folder.mkdir(parents=True, exist_ok=True)
    clean = _astronaut()
    rows: list[list[object]] = []
    write_image(folder / "noisy.png", add_noise(clean, 25 / 255, seed=0))
    rows.append([str(folder / "noisy.png"), "denoise", None])
    write_image(folder / "small.png", downscale(clean, 4))
    rows.append([str(folder / "small.png"), "superres", None])
    mask = np.ones(clean.shape[:2], np.float32)
    for row in range(10, clean.shape[0], 16):  # scratches across the picture
        mask[row : row + 3, :] = 0
    write_image(folder / "damaged.png", clean * mask[..., None])
    write_image(folder / "damaged_mask.png", mask[..., None])
    rows.append([str(folder / "damaged.png"), "inpaint", str(folder / "damaged_mask.png")])
    blurred = np.stack([gaussian_filter(clean[..., c], 1.6, mode="reflect") for c in range(3)], axis=-1)
    write_image(folder / "blurred.png", blurred)
    rows.append([str(folder / "blurred.png"), "deblur", None])
    buffer = io.BytesIO()
    PILImage.fromarray((clean * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=10)
    (folder / "blocky.jpg").write_bytes(buffer.getvalue())
    rows.append([str(folder / "blocky.jpg"), "dejpeg", None])
    return rows
