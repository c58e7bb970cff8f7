"""The default command on outputs the tables do not cover: 2048x2048 super-resolution and inpainting under
``--max-memory 16G`` (2 steps each: accepted untiled or refused, and the peak memory), the refusal at 2G, and a
50 % inpainting of a 128x128 photo (scikit-image's astronaut, never tuned on) against biharmonic inpainting;
with ``--data``, the whole F16 image (512x512) with clipped Gaussian noise of sigma 25 (seed 0, the Set9
table's protocol) denoised by the default command, which is given neither the noise level nor the truth.

    python bench/studies/default_checks.py          # writes bench/results/default_checks.json; needs /usr/bin/time
    python bench/studies/default_checks.py --only "inpaint 128"    # one check, merged into the file
    python bench/studies/default_checks.py --data ../shared/data --only f16
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data
from skimage.restoration import inpaint_biharmonic

from deepprior.degrade import drop_pixels
from deepprior.imageio import read_image, write_image
from deepprior.metrics import psnr

RESULTS = Path("bench/results/default_checks.json")


def run(name: str, args: list[str], results: dict[str, dict]) -> None:
    """Run the CLI with ``args`` under ``/usr/bin/time -v``; record its exit status, wall time and peak memory."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "deepprior.cli", *args],
                          capture_output=True, text=True, check=False)
    lines = done.stderr.splitlines()
    rss = [line for line in lines if "Maximum resident" in line]
    results[name] = {"rc": done.returncode, "seconds": round(time.perf_counter() - start, 1),
                     "peak_rss_gib": round(int(rss[0].split()[-1]) / 2**20, 2) if rss else None,
                     "stderr_tail": [line for line in lines if "\t" not in line][-2:]}
    print(name, results[name], flush=True)


def save(path: Path, image: np.ndarray) -> str:
    write_image(path, image)
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only the checks whose name contains this")
    parser.add_argument("--data", type=Path, help="the shared data folder, for the F16 denoising check")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="deepprior-checks-"))
    astro = data.astronaut()
    big = np.asarray(Image.fromarray(astro).resize((2048, 2048), Image.LANCZOS)).astype(np.float32) / 255
    big_damaged, big_mask = drop_pixels(big, 0.5, seed=0)
    small = np.asarray(Image.fromarray(astro).resize((128, 128), Image.LANCZOS)).astype(np.float32) / 255
    damaged, mask = drop_pixels(small, 0.5, seed=0)
    lr = save(out / "astro512.png", astro.astype(np.float32) / 255)
    checks = {
        "superres 512->2048, 2 steps, --max-memory 16G": ["superres", lr, "--scale", "4", "-o", str(out / "sr.png"),
                                                           "--iterations", "2", "--max-memory", "16G", "-q"],
        "inpaint 2048, 2 steps, --max-memory 16G": [
            "inpaint", save(out / "big_damaged.png", big_damaged),
            "--mask", save(out / "big_mask.png", big_mask[..., None]),
            "-o", str(out / "big_in.png"), "--iterations", "2", "--max-memory", "16G", "-q"],
        "superres 512->2048 refused at --max-memory 2G": ["superres", lr, "--scale", "4", "-o", str(out / "sr2.png"),
                                                           "--max-memory", "2G", "-q"],
        "inpaint 128 default": [
            "inpaint", save(out / "damaged.png", damaged), "--mask", save(out / "mask.png", mask[..., None]),
            "-o", str(out / "in.png"), "-q", "--record", str(out / "in.json")],
    }
    if args.data is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import harness

        f16 = harness.load_image(args.data, "set9", "f16")
        checks["denoise f16 512 default"] = [
            "denoise", save(out / "f16_noisy.png", harness.problem("denoise", f16, 0, sigma=25.0).measurement),
            "-o", str(out / "f16.png"), "-q", "--record", str(out / "f16.json")]
    results = json.loads(RESULTS.read_text()) if args.only and RESULTS.exists() else {}
    for name, command in checks.items():
        if args.only is None or args.only in name:
            run(name, command, results)
    if "inpaint 128 default" in results and (out / "in.png").exists():
        restored = read_image(out / "in.png").pixels
        biharmonic = np.clip(inpaint_biharmonic(damaged, mask < 0.5, channel_axis=-1), 0, 1)
        record = json.loads((out / "in.json").read_text())
        results["inpaint 128 default"].update(
            psnr=round(psnr(small, restored), 2), biharmonic=round(psnr(small, biharmonic), 2),
            input=round(psnr(small, damaged), 2), preset=record["preset"], steps=record["iterations_run"])
    if "denoise f16 512 default" in results and (out / "f16.png").exists():
        record = json.loads((out / "f16.json").read_text())
        results["denoise f16 512 default"].update(
            psnr=round(psnr(f16, read_image(out / "f16.png").pixels), 2), preset=record["preset"],
            steps=record["iterations_run"], noise=record["noise"], stop_reason=record["stop_reason"])
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
