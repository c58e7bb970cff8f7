"""What does the white-noise estimate read on JPEGs, camera and synthetic? (``CAMERA_WHITE_BELOW``)

    python bench/studies/camera_detection.py --data ../shared/data

``auto`` takes a JPEG whose white-noise estimate (:func:`deepprior.noise.estimate_sigma`) is below
``CAMERA_WHITE_BELOW`` for a camera's. This prints the estimate (0-255 scale) on the 256x256 centre crops of
PolyU *tuning* pairs (every 3rd of those ``bench/real_noise.py`` does not report; the noisy shot and its clean
mean image, each cut and saved as that benchmark does), and on 256x256 crops of the first six CBSD68 tuning
photos with Gaussian noise of sigma 0, 3, 5 and 10 saved by Pillow as JPEG at quality 75, 90 and 95 (4:2:0).
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import _bench  # noqa: F401  (bench/ on the path)
import numpy as np
import real_noise
from PIL import Image as PILImage
from real_noise_recipe import tuning_pairs

from deepprior.noise import estimate_sigma

SIGMAS = (0, 3, 5, 10)
QUALITIES = (75, 90, 95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    args = parser.parse_args()
    print("PolyU tuning crops: white-noise estimate of the noisy shot / of its mean image")
    with tempfile.TemporaryDirectory(prefix="deepprior-detect-") as tmp:
        for name in tuning_pairs(args.data, 3):
            _, noisy, clean = real_noise.crop_pair(args.data, name, 256, Path(tmp))
            print(f"  {name:40s} {estimate_sigma(noisy) * 255:5.2f} / {estimate_sigma(clean) * 255:5.2f}")
    print("CBSD68 tuning crops with Gaussian noise, saved as JPEG: the estimate at quality " +
          ", ".join(map(str, QUALITIES)))
    rng = np.random.default_rng(0)
    for path in sorted((args.data / "tune" / "cbsd68").glob("*.png"))[:6]:
        photo = np.asarray(PILImage.open(path).convert("RGB"), dtype=np.float64)[:256, :256]
        for sigma in SIGMAS:
            noisy = np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255).round().astype(np.uint8)
            readings = []
            for quality in QUALITIES:
                buffer = io.BytesIO()
                PILImage.fromarray(noisy).save(buffer, "JPEG", quality=quality, subsampling=2)
                decoded = np.asarray(PILImage.open(buffer), dtype=np.float32) / 255
                readings.append(f"{estimate_sigma(decoded) * 255:5.2f}")
            print(f"  {path.stem} sigma {sigma:2d}: {' '.join(readings)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
