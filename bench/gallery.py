"""Make the README gallery: one before / after figure per task, on crops of
scikit-image's bundled photographs, each made by the real ``deepprior``
command run as a subprocess with its default options.

    python bench/gallery.py --out docs/gallery            # every entry
    python bench/gallery.py --out docs/gallery --only deblur

For each entry the script cuts a small crop of a skimage photo, corrupts it
(with ``deepprior degrade`` or numpy / Pillow) in a temporary folder, runs
``deepprior TASK ...`` there with ``--record`` added, times it from the start
of the process to the written output, computes the PSNR of the input and of
the output against the clean crop, and writes

* ``OUT/NAME.png``: "input | deepprior | clean", side by side;
* ``OUT/gallery.json``: per entry, the command as a user would type it, the
  seconds, the steps and the stop reason from the record, both PSNRs, the
  image size and a note on the machine.

Resumable: an entry whose PNG and JSON entry both exist is skipped, so run
the same command again after an interruption. The timings mean something
only on the machine they were measured on: pin the run to one core, e.g.
``OMP_NUM_THREADS=1 taskset -c 1 python bench/gallery.py ...``, and say so
with ``--machine``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import deepprior
from deepprior.imageio import atomic_write_text, read_image
from deepprior.metrics import psnr
from deepprior.presets import get_preset
from deepprior.report import comparison_figure

MACHINE = "1 CPU core (taskset), PyTorch CPU"
MAX_PNG_BYTES = 300_000
ABOUT = ("Made by bench/gallery.py: each entry ran the real deepprior command (python -m deepprior.cli) as a "
         "subprocess on a crop of a photo bundled with scikit-image, with the options shown in 'command' plus "
         "--record; 'seconds' is the command's wall time, 'cpu_seconds' its CPU time.")
#: Entries whose default run would take far over 15 minutes on one core get a fixed step count instead; the
#: JSON and the command say so. Their presets cap the automatic stop at 6000 and 5000 steps (and the
#: automatic stop ran to its cap on the superres entry); at 128x128 a step took about 0.8 s and 0.4 s on the
#: (shared) core of the first gallery run.
ITERATIONS = {"inpaint-text": 1000, "inpaint-hole": 2000}


# ------------------------------------------------------------------ sources
def _half(pixels: np.ndarray) -> np.ndarray:
    """Halve a photo with Lanczos, so a small crop holds more of the scene."""
    h, w = pixels.shape[:2]
    return np.asarray(Image.fromarray(pixels).resize((w // 2, h // 2), Image.LANCZOS))


def _photo(name: str, half: bool = False) -> np.ndarray:
    from skimage import data

    pixels = getattr(data, name)()
    return _half(pixels) if half else pixels


# ------------------------------------------------------------------- entries
@dataclass
class Prepared:
    """What an entry made in the work folder before the run."""

    args: list[str]  # the deepprior arguments after the program name, as a user would type them
    output: str  # the file the command writes (relative to the work folder)
    shown_input: np.ndarray  # the input as the figure shows it
    baseline: np.ndarray  # the input compared with the clean crop (same size as the clean crop)
    input_label: str = "input"
    preparation: list[str] = field(default_factory=list)  # how the input was made, in words or commands
    region: np.ndarray | None = None  # inpainting: True where pixels were missing
    notes: str = ""


@dataclass
class Entry:
    name: str
    task: str
    source: str  # in words: which photo and which crop
    clean: Callable[[], np.ndarray]  # uint8 (H, W) or (H, W, 3)
    prepare: Callable[[Path, Callable[..., None]], Prepared]


def _save(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)


def _floats(path: Path) -> np.ndarray:
    return read_image(path).pixels


def _prepare_denoise(work: Path, deepprior_cmd: Callable[..., None]) -> Prepared:
    degrade = ["degrade", "original.png", "-o", "noisy.png", "--noise", "25", "--seed", "0"]
    deepprior_cmd(work, degrade)
    noisy = _floats(work / "noisy.png")
    return Prepared(["denoise", "noisy.png", "-o", "clean.png"], "clean.png", noisy, noisy,
                    input_label="noisy (sigma 25)", preparation=["deepprior " + shlex.join(degrade)])


def _prepare_superres(work: Path, deepprior_cmd: Callable[..., None]) -> Prepared:
    degrade = ["degrade", "original.png", "-o", "small.png", "--downscale", "4"]
    deepprior_cmd(work, degrade)
    small = read_image(work / "small.png")
    h, w = small.height, small.width
    as_uint8 = np.asarray(Image.open(work / "small.png").convert("RGB"))
    bicubic = np.asarray(Image.fromarray(as_uint8).resize((w * 4, h * 4), Image.BICUBIC)).astype(np.float32) / 255
    return Prepared(["superres", "small.png", "-o", "large.png", "--scale", "4"], "large.png", small.pixels, bicubic,
                    input_label=f"input {w}x{h}; bicubic x4", preparation=["deepprior " + shlex.join(degrade)],
                    notes="input PSNR: the low-resolution input upscaled x4 with Pillow's bicubic filter; the figure "
                    "shows the input itself, enlarged with nearest neighbour")


def _steps(name: str) -> list[str]:
    return ["--iterations", str(ITERATIONS[name])] if name in ITERATIONS else []


def _text_ink(size: tuple[int, int]) -> np.ndarray:
    """Where the overlaid text lies: (H, W) floats in [0, 1], the text's anti-aliased coverage."""
    h, w = size
    ink = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(ink)
    font = ImageFont.load_default(size=17)
    lines = ["The Deep", "Image Prior", "needs no", "training data", "at all, one", "image is all"]
    for i, line in enumerate(lines):
        draw.text((4 + (i % 2) * 6, 3 + i * 21), line, fill=255, font=font)
    return np.asarray(ink, dtype=np.float32) / 255


def _write_inpaint_inputs(work: Path, clean: np.ndarray, missing_weight: np.ndarray, fill: float) -> np.ndarray:
    """Damage ``clean`` where ``missing_weight`` > 0 (blended, as drawn text is), write photo.png and mask.png
    (white = known, black = to fill); return the boolean missing region."""
    c = clean.astype(np.float32) / 255
    weight = missing_weight[..., None] if c.ndim == 3 else missing_weight
    damaged = c * (1 - weight) + fill * weight
    _save(work / "photo.png", np.round(damaged * 255))
    missing = missing_weight > 0
    _save(work / "mask.png", np.where(missing, 0, 255))
    return missing


def _prepare_inpaint_text(work: Path, deepprior_cmd: Callable[..., None]) -> Prepared:
    clean = np.asarray(Image.open(work / "original.png"))
    ink = _text_ink(clean.shape[:2])
    missing = _write_inpaint_inputs(work, clean, ink, 1.0)
    photo = _floats(work / "photo.png")
    return Prepared(["inpaint", "photo.png", "--mask", "mask.png", "-o", "filled.png", *_steps("inpaint-text")],
                    "filled.png", photo, photo,
                    input_label="text over the photo", region=missing,
                    preparation=[(f"white text drawn over the crop with Pillow (its default font at 17 px); mask "
                                  f"black wherever the text touches a pixel ({missing.mean():.1%} of the pixels)")])


def _hole_region(size: tuple[int, int]) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    ellipse = ((yy - 36) / 17.0) ** 2 + ((xx - 36) / 22.0) ** 2 <= 1  # in the sky, left of the rocket
    rectangle = (yy >= 70) & (yy < 104) & (xx >= 58) & (xx < 88)  # across the rocket's body
    return (ellipse | rectangle).astype(np.float32)


def _prepare_inpaint_hole(work: Path, deepprior_cmd: Callable[..., None]) -> Prepared:
    clean = np.asarray(Image.open(work / "original.png"))
    missing = _write_inpaint_inputs(work, clean, _hole_region(clean.shape[:2]), 1.0)
    photo = _floats(work / "photo.png")
    return Prepared(["inpaint", "photo.png", "--mask", "mask.png", "-o", "filled.png", "--preset", "inpaint-hole",
                     *_steps("inpaint-hole")],
                    "filled.png", photo, photo, input_label="two holes", region=missing,
                    preparation=[(f"an ellipse and a rectangle blanked to white, mask black there "
                                  f"({missing.mean():.1%} of the pixels)")])


def _prepare_deblur(work: Path, deepprior_cmd: Callable[..., None]) -> Prepared:
    degrade = ["degrade", "original.png", "-o", "blurred.png", "--blur", "gaussian:1.6"]
    deepprior_cmd(work, degrade)
    blurred = np.asarray(Image.open(work / "blurred.png")).astype(np.float64)
    noise = np.random.default_rng(0).normal(0.0, 2.0, blurred.shape)
    _save(work / "blurry.png", np.clip(np.round(blurred + noise), 0, 255))
    blurry = _floats(work / "blurry.png")
    return Prepared(["deblur", "blurry.png", "-o", "sharp.png", "--kernel", "gaussian:1.6"], "sharp.png", blurry,
                    blurry, input_label="blurred + noise",
                    preparation=["deepprior " + shlex.join(degrade),
                                 ("then Gaussian noise of sigma 2 (0-255 scale, numpy seed 0), rounded and clipped "
                                  "-> blurry.png")])


def _prepare_dejpeg(work: Path, deepprior_cmd: Callable[..., None]) -> Prepared:
    Image.open(work / "original.png").save(work / "blocky.jpg", quality=10)
    blocky = _floats(work / "blocky.jpg")
    return Prepared(["dejpeg", "blocky.jpg", "-o", "clean.png"], "clean.png", blocky, blocky,
                    input_label="JPEG quality 10",
                    preparation=["Pillow: Image.save('blocky.jpg', quality=10) (default 4:2:0 chroma subsampling)"])


ENTRIES = {e.name: e for e in [
    Entry("denoise", "denoise", "skimage.data.astronaut()[24:152, 154:282] (the face, 128x128)",
          lambda: _photo("astronaut")[24:152, 154:282], _prepare_denoise),
    Entry("superres", "superres", "skimage.data.chelsea()[50:242, 120:312] (eye and nose, 192x192)",
          lambda: _photo("chelsea")[50:242, 120:312], _prepare_superres),
    Entry("inpaint-text", "inpaint", "skimage.data.coffee() halved with Lanczos, then [10:138, 80:208] (the cup, "
          "128x128)", lambda: _photo("coffee", half=True)[10:138, 80:208], _prepare_inpaint_text),
    Entry("inpaint-hole", "inpaint", "skimage.data.rocket() halved with Lanczos, then [60:188, 96:224] (the "
          "rocket, 128x128)", lambda: _photo("rocket", half=True)[60:188, 96:224], _prepare_inpaint_hole),
    Entry("deblur", "deblur", "skimage.data.camera()[70:198, 180:308] (face and camera, grey, 128x128)",
          lambda: _photo("camera")[70:198, 180:308], _prepare_deblur),
    Entry("dejpeg", "dejpeg", "skimage.data.astronaut()[320:448, 100:228] (the mission patch, 128x128)",
          lambda: _photo("astronaut")[320:448, 100:228], _prepare_dejpeg),
]}


# ------------------------------------------------------------------- running
def _environment() -> dict[str, str]:
    """The subprocess imports the same deepprior as this script."""
    env = dict(os.environ)
    src = str(Path(deepprior.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _deepprior(work: Path, args: list[str], *, log: Path | None = None) -> tuple[float, float]:
    """Run ``deepprior ARGS`` in ``work``; return the wall seconds from the start of the process to its end, and
    the CPU seconds (user + system) it used: less than the wall time when the core was shared."""
    command = [sys.executable, "-m", "deepprior.cli", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if log is None:
        completed = subprocess.run(command, cwd=work, env=_environment(), capture_output=True, text=True,
                                   check=False)
        output = completed.stdout + completed.stderr
    else:
        with open(log, "w") as stream:
            completed = subprocess.run(command, cwd=work, env=_environment(), stdout=stream, stderr=subprocess.STDOUT,
                                       check=False)
        output = log.read_text(errors="replace")[-2000:]
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"deepprior {shlex.join(args)} failed with exit code {completed.returncode}:\n{output}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _as_rgb_or_grey(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.ndim == 3 else pixels[..., None]


def _write_figure(path: Path, panels: list[tuple[str, np.ndarray]], panel_size: float) -> None:
    """comparison_figure, then shrink the PNG losslessly (Pillow, optimize) and, only if still too large,
    draw it again smaller."""
    for size in (panel_size, panel_size * 0.85, panel_size * 0.7):
        comparison_figure(path, panels, panel_size=size)
        figure = Image.open(path)
        figure.load()
        figure.save(path, optimize=True)
        if path.stat().st_size <= MAX_PNG_BYTES:
            return


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_entry(entry: Entry, out: Path, keep: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"deepprior-gallery-{entry.name}-"))
    clean_uint8 = entry.clean()
    _save(work / "original.png", clean_uint8)
    clean = _as_rgb_or_grey(clean_uint8.astype(np.float32) / 255)
    prepared = entry.prepare(work, lambda w, a: _deepprior(w, a))
    record_file = work / "record.json"
    print(f"[{entry.name}] deepprior {shlex.join(prepared.args)}   (in {work})", flush=True)
    seconds, cpu_seconds = _deepprior(work, [*prepared.args, "--record", str(record_file)], log=work / "run.log")
    record = json.loads(record_file.read_text())
    restored = _floats(work / prepared.output)
    if restored.shape != clean.shape:
        raise RuntimeError(f"output is {restored.shape}, the clean crop {clean.shape}")
    p_in, p_out = psnr(clean, prepared.baseline), psnr(clean, restored)
    panels = [(f"{prepared.input_label}, {p_in:.2f} dB", prepared.shown_input),
              (f"deepprior, {p_out:.2f} dB", restored), ("clean", clean)]
    # about 2x for a 128 crop; comparison_figure shows every panel at the same size
    _write_figure(out / f"{entry.name}.png", panels, panel_size=3.75)
    h, w = clean.shape[:2]
    ih, iw = prepared.shown_input.shape[:2]
    row: dict[str, Any] = {
        "task": entry.task,
        "command": "deepprior " + shlex.join(prepared.args),
        "figure": f"{entry.name}.png",
        "image": entry.source,
        "preparation": prepared.preparation,
        "input_size": f"{iw}x{ih}",
        "output_size": f"{w}x{h}",
        "channels": int(clean.shape[2]),
        "seconds": round(seconds, 1),
        "seconds_measured": "wall time of the whole command, from process start to the output written and exit "
                            "(includes Python and PyTorch start-up)",
        "cpu_seconds": round(cpu_seconds, 1),
        "cpu_share": round(cpu_seconds / seconds, 2),
        "cpu_note": "CPU time (user + system) of the command; a cpu_share well below 1 means another process "
                    "shared the core during the run and the wall seconds are inflated",
        "fit_seconds": record.get("seconds"),
        "preset": record.get("preset"),
        "steps": record.get("iterations_run"),
        "stop_iteration": record.get("stop_iteration"),
        "stop_reason": record.get("stop_reason"),
        "seed": record.get("seed"),
        "precision": record.get("precision"),
        "device": record.get("device"),
        "refinement": bool(record.get("refinement")),
        "psnr_input": round(p_in, 2),
        "psnr_output": round(p_out, 2),
        "psnr_note": "RGB (or grey) PSNR in dB against the clean crop, whole image, deepprior.metrics.psnr",
        "machine": MACHINE,
        "extra_flags": "--record record.json (to read the steps and stop reason; it does not change the run)",
    }
    if prepared.region is not None:
        region = prepared.region
        row["psnr_filled_region"] = round(psnr(clean[region], restored[region]), 2)
        row["missing_fraction"] = round(float(region.mean()), 4)
    if entry.name in ITERATIONS:
        row["default_options"] = False
        cap = get_preset(record["preset"]).fit.iterations
        row["iterations_note"] = (f"--iterations {ITERATIONS[entry.name]} added: a fixed step count instead of the "
                                  f"default automatic stop capped at the preset's {cap} steps, which would take far "
                                  f"over 15 minutes on one core")
    else:
        row["default_options"] = True
    if prepared.notes:
        row["notes"] = prepared.notes
    if not keep:
        for child in sorted(work.iterdir()):
            child.unlink()
        work.rmdir()
    else:
        row["work_folder"] = str(work)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"), help="folder of the figures and gallery.json")
    parser.add_argument("--only", choices=list(ENTRIES), action="append", help="run this entry only (repeatable)")
    parser.add_argument("--force", action="store_true", help="redo entries that are already done")
    parser.add_argument("--keep", action="store_true", help="keep each entry's temporary work folder")
    parser.add_argument("--machine", default=MACHINE, help=f"machine note recorded with each entry ({MACHINE!r})")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    index = args.out / "gallery.json"
    gallery = json.loads(index.read_text()) if index.exists() else {}
    gallery["about"] = ABOUT
    gallery.setdefault("entries", {})
    print(f"deepprior {deepprior.__version__} from {deepprior.__file__}", flush=True)
    for name in args.only or list(ENTRIES):
        if not args.force and name in gallery["entries"] and (args.out / f"{name}.png").exists():
            print(f"[{name}] done already, skipped", flush=True)
            continue
        row = run_entry(ENTRIES[name], args.out, args.keep)
        row["machine"] = args.machine
        import torch

        row["versions"] = {"deepprior": deepprior.__version__, "torch": torch.__version__,
                           "python": platform.python_version(),
                           "commit": _git_commit(Path(deepprior.__file__).resolve().parent)}
        gallery["entries"][name] = row
        atomic_write_text(index, json.dumps(gallery, indent=1) + "\n")
        print(f"[{name}] {row['seconds']:.1f} s, {row['steps']} steps ({row['stop_reason']}), PSNR "
              f"{row['psnr_input']:.2f} -> {row['psnr_output']:.2f} dB; wrote {args.out / (name + '.png')} "
              f"({(args.out / (name + '.png')).stat().st_size // 1000} KB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
