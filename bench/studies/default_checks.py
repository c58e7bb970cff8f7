"""The default command on outputs the tables do not cover: 2048x2048 super-resolution and inpainting under
``--max-memory 16G`` (2 steps each: accepted untiled or refused, and the peak memory), the refusal at 2G, and a
50 % inpainting of a 128x128 photo (scikit-image's astronaut, never tuned on) against biharmonic inpainting.

    python bench/studies/default_checks.py          # writes bench/results/default_checks.json; needs /usr/bin/time
"""
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

out = Path(tempfile.mkdtemp(prefix="deepprior-checks-"))
astro = data.astronaut().astype(np.float32) / 255
write_image(out / "astro512.png", astro)
big = np.asarray(Image.fromarray(data.astronaut()).resize((2048, 2048), Image.LANCZOS)).astype(np.float32) / 255
damaged, mask = drop_pixels(big, 0.5, seed=0)
write_image(out / "big_damaged.png", damaged); write_image(out / "big_mask.png", mask[..., None])
small = np.asarray(Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS)).astype(np.float32) / 255
sd, sm = drop_pixels(small, 0.5, seed=0)
write_image(out / "small_damaged.png", sd); write_image(out / "small_mask.png", sm[..., None])
cli = [sys.executable, "-m", "deepprior.cli"]
results = {}
def run(name, args):
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cli, *args], capture_output=True, text=True, check=False)
    rss = [l for l in p.stderr.splitlines() if "Maximum resident" in l]
    results[name] = {"rc": p.returncode, "seconds": round(time.perf_counter() - start, 1),
                     "peak_rss_gib": round(int(rss[0].split()[-1]) / 2**20, 2) if rss else None,
                     "stderr_tail": [l for l in p.stderr.splitlines() if "\t" not in l][-2:]}
    print(name, results[name], flush=True)
run("superres 512->2048, 2 steps, --max-memory 16G", ["superres", str(out / "astro512.png"), "--scale", "4", "-o", str(out / "big_sr.png"), "--iterations", "2", "--max-memory", "16G", "-q", "--record", str(out / "sr.json")])
run("inpaint 2048, 2 steps, --max-memory 16G", ["inpaint", str(out / "big_damaged.png"), "--mask", str(out / "big_mask.png"), "-o", str(out / "big_in.png"), "--iterations", "2", "--max-memory", "16G", "-q"])
run("superres 512->2048 refused at --max-memory 2G", ["superres", str(out / "astro512.png"), "--scale", "4", "-o", str(out / "big_sr2.png"), "--max-memory", "2G", "-q"])
run("inpaint 128 default", ["inpaint", str(out / "small_damaged.png"), "--mask", str(out / "small_mask.png"), "-o", str(out / "small_in.png"), "-q", "--record", str(out / "in.json")])
restored = read_image(out / "small_in.png").pixels
bih = np.clip(inpaint_biharmonic(sd, sm < 0.5, channel_axis=-1), 0, 1)
results["inpaint 128 default"].update(psnr=round(psnr(small, restored), 2), biharmonic=round(psnr(small, bih), 2),
                                      input=round(psnr(small, sd), 2), preset=json.loads((out / "in.json").read_text())["preset"])
print(json.dumps(results, indent=1))
Path("bench/results/default_checks.json").write_text(json.dumps(results, indent=1))
