"""The ``deepprior`` command: every task of the paper from the shell.

Each subcommand reads its inputs, checks everything that can be checked
before any work starts (so bad input costs nothing and writes nothing), runs
the engine, then writes the outputs atomically. Problems the user can fix
end with one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, NoReturn

import numpy as np

from deepprior import __version__
from deepprior.jobs import (
    JOBS,
    InputError,
    Job,
    build_record,
    check_kernel_fits,
    gaussian_sigma,
    match_channels,
    read_input,
    read_kernel,
)

EXIT_USAGE = 2
EXIT_FAILURE = 1




class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# ----------------------------------------------------------------- arguments
def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type accepting whole numbers in ``[low, high)``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if high is not None and value >= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high - 1}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1)
_scale = _whole_number(2)
_seed = _whole_number(0, 2**64)


def _memory_size(text: str) -> int:
    """``16G``, ``512M``, ``2.5GiB`` or a number of bytes."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1] if cleaned and cleaned[-1] in units else ""
    try:
        value = float(cleaned[: len(cleaned) - len(unit)]) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 16G or 500M, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive size, got {text!r}")
    return int(value)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _probability(text: str) -> float:
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _gaussian_spec(text: str) -> float:
    try:
        return gaussian_sigma(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("run options")
    group.add_argument("--preset", help="recipe name (see 'deepprior presets') or a .json recipe file; "
                       "each task has its default")
    group.add_argument("--iterations", type=_positive_int, metavar="N",
                       help="run exactly N steps (default: stop automatically, with the preset's count as a cap)")
    group.add_argument("--stop", choices=("fixed", "auto", "oracle"), default=None,
                       help="auto: decide from the run itself when to stop (the default without --iterations); "
                       "fixed: run all iterations (the default with --iterations); oracle: keep the output "
                       "closest to --ground-truth (benchmarks only)")
    group.add_argument("--seed", type=_seed, metavar="N", help="random seed, for reproducible runs (default: random)")
    group.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    group.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="auto: bfloat16 where the device computes it natively (about 2x faster), else fp32; "
                       "fp32: the original's arithmetic exactly")
    group.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None,
                       help="denoising: after the fit, Wiener-filter the noisy image with the fit as pilot, several "
                       "window sizes and colour transforms mixed by SURE (default: as the preset says; the default "
                       "'fast' does, the paper's presets do not)")
    group.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                       help="refuse runs whose estimated peak memory is larger, e.g. 16G or 500M "
                       "(default: 80%% of the memory free now)")
    group.add_argument("--tile", type=_whole_number(32), metavar="N",
                       help="restore in overlapping N x N tiles blended smoothly (for images too large for memory)")
    group.add_argument("--tile-overlap", type=_whole_number(0), default=32, metavar="N",
                       help="pixels shared by neighbouring tiles (default 32)")
    group.add_argument("--checkpoint", metavar="FILE",
                       help="save the fit's whole state here every --checkpoint-every steps and when it ends or is "
                       "stopped (SIGINT / SIGTERM write it and the best output so far)")
    group.add_argument("--checkpoint-every", type=_positive_int, default=100, metavar="N",
                       help="steps between checkpoints (default 100)")
    group.add_argument("--resume", action="store_true",
                       help="continue from --checkpoint: ends exactly as the uninterrupted run would (CPU)")
    group.add_argument("--ground-truth", metavar="GT", help="clean image: PSNR is printed and recorded (never used to fit)")
    group.add_argument("--record", metavar="JSON", help="write the run's record (parameters, history, timings) as JSON")
    group.add_argument("--report", metavar="DIR", help="write a comparison figure and loss / PSNR curves into DIR")
    group.add_argument("--snapshots", metavar="DIR", help="save the current estimate into DIR every --every steps")
    group.add_argument("--every", type=_positive_int, default=100, metavar="N", help="snapshot interval (default 100)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    return common


EXAMPLES = {
    "denoise": "deepprior denoise noisy.png -o clean.png --sigma 25",
    "superres": "deepprior superres small.png -o large.png --scale 4",
    "inpaint": "deepprior inpaint photo.png --mask mask.png -o filled.png   (mask: white = known)",
    "deblur": "deepprior deblur blurry.png -o sharp.png --kernel gaussian:1.6",
    "dejpeg": "deepprior dejpeg blocky.jpg -o clean.png",
    "flash": "deepprior flash --flash f.jpg --no-flash nf.jpg -o out.png",
    "degrade": "deepprior degrade clean.png -o noisy.png --noise 25 --seed 0",
    "demo": "deepprior demo -o demo.png",
    "serve": "deepprior serve --port 7860 --concurrency 1",
    "batch": "deepprior batch photos/ -o restored/ --task denoise --sigma 25 --workers 2\n"
             "  deepprior batch --status restored/",
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepprior", description="Restore images with the Deep Image Prior: no training data, "
                     "no pretrained weights, one image at a time.")
    parser.add_argument("--version", action="version", version=f"deepprior {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = _common_options()

    def task(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text,
                           epilog=f"example:\n  {EXAMPLES[name]}", formatter_class=argparse.RawDescriptionHelpFormatter)
        return p

    p = task("denoise", "Remove noise from an image.")
    p.add_argument("input", help="the noisy image")
    p.add_argument("-o", "--output", required=True, help="where to write the result")
    p.add_argument("--sigma", type=_non_negative_float, help="noise level on the 0-255 scale (estimated from the image "
                   "when not given); 40 or more picks 'denoise-50'")

    p = task("superres", "Upscale an image by an integer factor.")
    p.add_argument("input", help="the low-resolution image")
    p.add_argument("-o", "--output", required=True, help="where to write the result")
    p.add_argument("--scale", type=_scale, required=True, help="upscaling factor (2 or more)")
    p.add_argument("--kernel", default="lanczos2", help="downsampling model: lanczos2 (paper), lanczos3, bicubic, box, gauss")

    p = task("inpaint", "Fill in the damaged or missing parts of an image.")
    p.add_argument("input", help="the damaged image")
    p.add_argument("--mask", required=True, help="mask image of the same size: white = known, black = to fill")
    p.add_argument("-o", "--output", required=True, help="where to write the result")

    p = task("deblur", "Remove a known blur.")
    p.add_argument("input", help="the blurred image")
    p.add_argument("-o", "--output", required=True, help="where to write the result")
    p.add_argument("--kernel", required=True, help="gaussian:SIGMA, or a kernel file (.npy or a grey image)")
    p.add_argument("--sigma", type=_non_negative_float, help="noise level of the blurred image on the 0-255 scale "
                   "(estimated when not given); automatic stopping ends the fit when it reaches the noise")

    p = task("dejpeg", "Remove JPEG blocking and ringing.")
    p.add_argument("input", help="the JPEG-damaged image")
    p.add_argument("-o", "--output", required=True, help="where to write the result")

    p = task("flash", "Combine a flash / no-flash pair: no-flash lighting, flash detail.")
    p.add_argument("--flash", required=True, help="the photo taken with flash")
    p.add_argument("--no-flash", required=True, help="the photo taken without flash")
    p.add_argument("-o", "--output", required=True, help="where to write the result")

    p = sub.add_parser("degrade", help="Make a test input from a clean image.", description="Make a test input from a "
                       "clean image: noise, Lanczos downscaling, random pixel drop or blur.",
                       epilog=f"example:\n  {EXAMPLES['degrade']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="the clean image")
    p.add_argument("-o", "--output", required=True, help="where to write the degraded image")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--noise", type=_non_negative_float, metavar="SIGMA", help="Gaussian noise, sigma on the 0-255 scale")
    how.add_argument("--downscale", type=_scale, metavar="S", help="shrink by S with Lanczos (as the SR benchmarks)")
    how.add_argument("--drop", type=_probability, metavar="P", help="zero each pixel with probability P")
    how.add_argument("--blur", type=_gaussian_spec, metavar="gaussian:SIGMA", help="Gaussian blur")
    p.add_argument("--mask-out", metavar="M", help="with --drop: also write the mask (white = kept)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    p.add_argument("--seed", type=_seed, metavar="N", help="random seed")

    sub.add_parser("presets", help="List the presets and what each reproduces.")

    p = sub.add_parser("demo", help="Denoise a small image shipped with scikit-image and write a before / after figure.",
                       epilog=f"example:\n  {EXAMPLES['demo']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="deepprior-demo.png", help="comparison figure (default deepprior-demo.png)")
    p.add_argument("--iterations", type=_positive_int, default=300, metavar="N", help="steps (default 300)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("serve", help="Start the web app (needs the 'web' extra: pip install 'deepprior[web]').",
                       epilog=f"example:\n  {EXAMPLES['serve']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=_whole_number(1, 65536), default=7860, help="port (default 7860)")
    p.add_argument("--max-pixels", type=_positive_int, default=1_000_000, metavar="N",
                   help="refuse images with more pixels (default 1000000)")
    p.add_argument("--max-upload-mb", type=_positive_int, default=20, metavar="N", help="largest upload (default 20 MB)")
    p.add_argument("--concurrency", type=_positive_int, default=1, metavar="N",
                   help="runs at a time; others wait in the queue (default 1)")
    _add_batch_parser(sub)
    return parser


BATCH_TASKS = ("denoise", "superres", "inpaint", "deblur", "dejpeg")


def _add_batch_parser(sub: Any) -> None:
    p = sub.add_parser("batch", help="Restore every image in a folder (resumable; local workers or Ray).",
                       description="Restore every matching image under INPUT_DIR into OUTPUT_DIR, mirroring the "
                       "folder tree. A manifest in OUTPUT_DIR records each image, so running the same command again "
                       "resumes: finished images are skipped, failed ones retried, unfinished ones redone.",
                       epilog=f"example:\n  {EXAMPLES['batch']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", metavar="INPUT_DIR", help="folder of images (searched recursively)")
    p.add_argument("-o", "--output", metavar="OUTPUT_DIR", help="where the outputs and the manifest go")
    p.add_argument("--status", metavar="OUTPUT_DIR", help="print the state of the batch in OUTPUT_DIR and exit")
    p.add_argument("--task", choices=BATCH_TASKS, help="what to do to every image")
    group = p.add_argument_group("task options (as for the single-image commands)")
    group.add_argument("--sigma", type=_non_negative_float, help="denoise / deblur: noise level on the 0-255 scale "
                       "(estimated per image when not given)")
    group.add_argument("--scale", type=_scale, help="superres: upscaling factor")
    group.add_argument("--kernel", help="superres: downsampling model; deblur: gaussian:SIGMA or a kernel file")
    group.add_argument("--preset", help="recipe name or .json recipe file")
    group.add_argument("--iterations", type=_positive_int, metavar="N", help="run exactly N steps (default: stop "
                       "automatically)")
    group.add_argument("--stop", choices=("fixed", "auto"), help="stopping rule (default: auto)")
    group.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed of every fit (default 0, so a "
                       "rerun gives the same outputs)")
    group.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="as for single images")
    group.add_argument("--max-memory", type=_memory_size, metavar="SIZE", help="per image, as for single images")
    group.add_argument("--tile", type=_whole_number(32), metavar="N", help="restore each image in N x N tiles")
    group = p.add_argument_group("batch options")
    group.add_argument("--pattern", action="append", metavar="GLOB", help="file names to take, e.g. '*.tif' "
                       "(repeatable; default: every image type deepprior reads)")
    group.add_argument("--mask-suffix", default=None, metavar="S", help="inpaint: each image's mask lies beside it, "
                       "named with S before the extension (default _mask: photo.png -> photo_mask.png)")
    group.add_argument("--mask-dir", metavar="DIR", help="inpaint: masks in DIR, at the same relative path and name")
    group.add_argument("--workers", type=_positive_int, metavar="N", help="worker processes (default: one per GPU, "
                       "else one per 2 CPUs); with --ray local, the instance gets workers x threads CPUs")
    group.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads per worker (default: the CPUs "
                       "shared out between the workers)")
    group.add_argument("--device", default="auto", help="auto (one worker per GPU when there are GPUs), cpu, cuda")
    group.add_argument("--ray", metavar="ADDRESS", help="run on Ray: auto (the cluster this machine belongs to), "
                       "local (a private instance), or an address such as ray://head:10001")
    group.add_argument("--retries", type=_whole_number(0), default=2, metavar="N",
                       help="attempts after the first for a failed image (default 2)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


# ------------------------------------------------------------------- helpers
def _check_folder(path: str | None, what: str) -> None:
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"{what} folder '{os.path.dirname(path) or '.'}' does not exist")


def _check_dir_target(path: str | None, what: str) -> None:
    if path is None:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{what} '{path}' exists and is not a folder")
    _check_folder(os.path.join(path, "x"), what) if os.path.isdir(path) else _check_folder(path.rstrip("/\\"), what)


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _snapshot_callback(folder: str, every: int, bit_depth: int) -> Callable[[Any], None]:
    from deepprior.imageio import from_tensor, write_image

    def save_snapshot(state: Any) -> None:
        if state.iteration % every == 0:
            os.makedirs(folder, exist_ok=True)
            current = state.average if state.average is not None else state.output
            write_image(os.path.join(folder, f"iteration_{state.iteration:06d}.png"), from_tensor(current.cpu()),
                        bit_depth=bit_depth)

    return save_snapshot


class _SignalStop:
    """While a fit runs, SIGINT and SIGTERM end it cleanly at the next step (the loop then writes its
    checkpoint, and the CLI the best output so far) instead of killing the process."""

    name = "signal"

    def __init__(self) -> None:
        import signal

        self.received: str | None = None
        self._previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _on_signal(self, signum: int, _frame: Any) -> None:
        import signal

        self.received = signal.Signals(signum).name

    def __call__(self, _state: Any) -> str | None:
        return f"interrupted by {self.received}" if self.received else None

    def restore(self) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _fit(job: Job, preset: Any, args: argparse.Namespace, device: Any, gt: np.ndarray | None,
         callbacks: list[Any]) -> tuple[np.ndarray, Any, int]:
    """Run the fit (or the tiles); return the restored image, the result and the seed."""
    from deepprior.engine import run
    from deepprior.imageio import from_tensor, to_tensor

    if args.tile:
        return _run_tiled(job, preset, args, device)
    result, _, seed = run(
        to_tensor(job.measurement), job.operator, preset, image_size=job.image_size,
        channels=job.measurement.shape[2], iterations=args.iterations, seed=args.seed, device=device,
        ground_truth=to_tensor(gt) if gt is not None else None,
        guide=to_tensor(job.guide) if job.guide is not None else None, callbacks=callbacks, stop=args.stop,
        sigma=job.extra["sigma"] / 255 if "sigma" in job.extra else None, progress=not args.quiet,
        description=f"{job.task} ({preset.name})", precision=args.precision, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume, refine=getattr(args, "refine", None),
    )
    return from_tensor(result.output.cpu()), result, seed


def _check_memory(job: Job, preset: Any, args: argparse.Namespace, device: Any) -> None:
    """Refuse, before any work, a fit (or a tile) that would not fit in the memory budget."""
    from deepprior.engine import estimate_memory
    from deepprior.imageio import to_tensor
    from deepprior.memory import available_bytes, format_bytes

    budget = args.max_memory if args.max_memory else int(0.8 * available_bytes(device))
    channels = job.measurement.shape[2]
    guide = to_tensor(job.guide) if job.guide is not None else None
    h, w = job.image_size
    if args.tile:
        size = (min(args.tile, h), min(args.tile, w))
        need = estimate_memory(preset, size, channels, guide)
        if need > budget:
            raise InputError(f"a {args.tile}x{args.tile} tile needs about {format_bytes(need)} but "
                           f"{format_bytes(budget)} is allowed (--max-memory): use a smaller --tile")
        return
    need = estimate_memory(preset, (h, w), channels, guide)
    if need > budget:
        fitting = [t for t in (1024, 512, 256, 128, 64) if t < max(h, w)
                   and estimate_memory(preset, (min(t, h), min(t, w)), channels, guide) <= budget]
        advice = (f"add --tile {fitting[0]} to restore it in overlapping tiles" if fitting
                  else "even 64-pixel tiles would not fit")
        raise InputError(f"restoring {w}x{h} needs about {format_bytes(need)} but {format_bytes(budget)} is allowed "
                       f"(--max-memory, default 80% of the free memory): {advice}")


def _run_tiled(job: Job, preset: Any, args: argparse.Namespace, device: Any) -> tuple[np.ndarray, Any, int]:
    """Restore ``job`` tile by tile (see :mod:`deepprior.tiling`); return the image, a summary result, the seed."""
    import secrets

    import torch

    from deepprior.engine import run
    from deepprior.fitting import FitResult
    from deepprior.imageio import from_tensor, to_tensor
    from deepprior.tiling import assemble, tile_boxes, tile_operator

    h, w = job.image_size
    multiple = job.extra.get("scale", 1)
    overlap = max(args.tile_overlap // multiple * multiple, multiple)
    boxes = tile_boxes(h, w, args.tile, overlap, multiple)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    pieces, tiles = [], []
    total = FitResult(image=torch.empty(0), average=None, stop_reason=f"tiled: {len(boxes)} tiles")
    for index, box in enumerate(boxes, 1):
        try:
            operator, cut = tile_operator(job.operator, box)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        measurement = cut(job.measurement)
        guide = job.guide[box.top : box.top + box.height, box.left : box.left + box.width] if job.guide is not None else None
        result, _, _ = run(
            to_tensor(measurement), operator, preset, image_size=(box.height, box.width),
            channels=job.measurement.shape[2], iterations=args.iterations, seed=seed, device=device,
            guide=to_tensor(guide) if guide is not None else None, stop=args.stop,
            sigma=job.extra["sigma"] / 255 if "sigma" in job.extra else None, progress=not args.quiet,
            description=f"{job.task} tile {index}/{len(boxes)}", precision=args.precision,
            refine=getattr(args, "refine", None),
        )
        pieces.append((box, from_tensor(result.output.cpu())))
        tiles.append({"top": box.top, "left": box.left, "height": box.height, "width": box.width,
                      "iterations_run": result.iterations_run, "stop_iteration": result.stop_iteration,
                      "stop_reason": result.stop_reason, "seconds": round(result.seconds, 3)})
        total.iterations_run += result.iterations_run
        total.seconds += result.seconds
        total.parameters, total.precision = result.parameters, result.precision
    total.stopping = {"tiles": tiles, "tile": args.tile, "overlap": overlap}
    total.stop_iteration = max(t["stop_iteration"] for t in tiles)
    return assemble(h, w, job.measurement.shape[2], overlap, pieces), total, seed


def run_task(args: argparse.Namespace) -> int:
    """Run one restoration subcommand from its parsed arguments; return the exit code (0, or 130 when a signal
    stopped the fit early). Problems with the input raise :class:`InputError` or ``ImageError``."""
    from deepprior.engine import resolve_device
    from deepprior.imageio import check_output_path, write_image, atomic_write_text
    from deepprior.metrics import psnr
    from deepprior.presets import get_preset

    job = JOBS[args.command](args)
    try:
        preset = get_preset(job.preset)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if preset.input_kind == "image" and job.guide is None:
        raise InputError(f"preset {preset.name!r} needs a guidance image: use it with 'deepprior flash'")
    if getattr(args, "refine", None) and job.task != "denoise":
        raise InputError(f"--refine is for denoising (it filters the noisy image itself), not {job.task}")
    if args.preset and args.preset.lower().endswith(".json"):
        job.inputs.append(args.preset)
    check_output_path(args.output, *job.inputs, *([args.ground_truth] if args.ground_truth else []))
    _check_folder(args.record, "record")
    _check_dir_target(args.report, "report")
    _check_dir_target(args.snapshots, "snapshots")
    if args.record and os.path.isdir(args.record):
        raise InputError(f"record '{args.record}' is a folder")
    if args.record and any(_same_file(args.record, p) for p in [*job.inputs, *filter(None, [args.ground_truth])]):
        raise InputError(f"record '{args.record}' would overwrite an input")
    if args.record and _same_file(args.record, args.output):
        raise InputError(f"record '{args.record}' and -o name the same file")
    for what, folder in (("report", args.report), ("snapshots", args.snapshots)):
        if folder and any(_same_file(folder, p) for p in filter(None, [args.output, args.record])):
            raise InputError(f"{what} folder '{folder}' is also the output or record file")
    device = resolve_device(args.device)
    channels = job.measurement.shape[2]
    gt = None
    if args.ground_truth:
        gt_img = read_input(args.ground_truth, "ground-truth")
        if gt_img.pixels.shape[:2] != tuple(job.image_size):
            gh, gw = gt_img.pixels.shape[:2]
            raise InputError(f"ground truth '{args.ground_truth}' is {gw}x{gh} but the output will be "
                           f"{job.image_size[1]}x{job.image_size[0]}")
        gt = match_channels(gt_img.pixels, channels, "ground truth")
    _check_memory(job, preset, args, device)
    if args.resume and not (args.checkpoint and os.path.isfile(args.checkpoint)):
        raise InputError("--resume needs --checkpoint FILE naming an existing checkpoint")
    if args.checkpoint:
        _check_folder(args.checkpoint, "checkpoint")
        if any(_same_file(args.checkpoint, p) for p in [*job.inputs, args.output]):
            raise InputError(f"checkpoint '{args.checkpoint}' would overwrite an input or the output")
    callbacks = [_snapshot_callback(args.snapshots, args.every, job.image.bit_depth)] if args.snapshots else []
    if args.tile and (args.snapshots or args.ground_truth or args.checkpoint):
        raise InputError("--tile does not go with --snapshots, --ground-truth or --checkpoint")
    signals = _SignalStop()
    callbacks.append(signals)
    try:
        restored, result, seed = _fit(job, preset, args, device, gt, callbacks)
    finally:
        signals.restore()
    write_image(args.output
, restored, bit_depth=job.image.bit_depth, alpha=job.alpha)
    final_psnr = psnr(gt, restored) if gt is not None else None
    input_psnr = psnr(gt, job.baseline) if gt is not None and job.baseline is not None else None
    reference_psnr = psnr(gt, job.reference[1]) if gt is not None and job.reference is not None else None
    if args.record:
        record = build_record(job, preset, result, seed, device, output=args.output, ground_truth=args.ground_truth,
                              psnr=final_psnr, input_psnr=input_psnr)
        if job.reference is not None:
            record[f"{job.reference[0]}_psnr"] = reference_psnr
        atomic_write_text(args.record, json.dumps(record, indent=1, allow_nan=False if final_psnr != float("inf") else True) + "\n")
    if args.report:
        from deepprior.report import comparison_figure, curves_figure

        os.makedirs(args.report, exist_ok=True)
        panels = [("input", job.measurement)]
        if job.guide is not None:
            panels.insert(0, ("flash (network input)", job.guide))
        title = "restored" + (f" {final_psnr:.2f} dB" if final_psnr is not None else "")
        if input_psnr is not None:
            panels[-1] = (f"input {input_psnr:.2f} dB", panels[-1][1])
        panels.append((title, restored))
        if gt is not None:
            panels.append(("ground truth", gt))
        comparison_figure(os.path.join(args.report, "comparison.png"), panels)
        if result.history:  # a tiled run has one history per tile: the record has them in short
            curves_figure(os.path.join(args.report, "curves.png"), result.history,
                          stop_iteration=result.stop_iteration, stop_reason=result.stop_reason)
    if signals.received:
        print(f"deepprior {job.task}: stopped by {signals.received} at iteration {result.iterations_run}; wrote the "
              f"best result so far to {args.output}" + (f" and the checkpoint {args.checkpoint} (continue with "
                                                       f"--resume)" if args.checkpoint else ""), file=sys.stderr)
        return 130
    if not args.quiet:
        h, w = job.image_size
        line = (f"wrote {args.output} ({w}x{h}): {job.task} with preset '{preset.name}', {result.iterations_run} "
                f"iterations in {result.seconds:.1f} s on {device} (stop: {result.stop_reason}, seed {seed})")
        if final_psnr is not None:
            line += f"; PSNR {final_psnr:.2f} dB (input {input_psnr:.2f} dB"
            if reference_psnr is not None:
                line += f", {job.reference[0]} {reference_psnr:.2f} dB"
            line += ")"
        print(line)
    return 0


def _degrade(args: argparse.Namespace) -> int:
    from PIL import Image as PILImage

    from deepprior import degrade
    from deepprior.imageio import check_output_path, write_image

    img = read_input(args.input)
    outputs = [args.output] + ([args.mask_out] if args.mask_out else [])
    if args.mask_out and args.drop is None:
        raise InputError("--mask-out only goes with --drop")
    for out in outputs:
        check_output_path(out, args.input)
    if args.mask_out and os.path.abspath(args.mask_out) == os.path.abspath(args.output):
        raise InputError("--mask-out and -o name the same file")
    if args.blur is not None:
        from deepprior.operators import Blur

        check_kernel_fits(Blur.gaussian(args.blur), img.height, img.width, f"--blur gaussian:{args.blur:g}")
    alpha = img.alpha
    mask = None
    if args.noise is not None:
        pixels = degrade.add_noise(img.pixels, args.noise / 255, seed=args.seed)
    elif args.downscale is not None:
        pixels = degrade.downscale(img.pixels, args.downscale)
        if alpha is not None:
            h, w = pixels.shape[:2]
            cropped = alpha[: h * args.downscale, : w * args.downscale]
            alpha = np.asarray(PILImage.fromarray(cropped).resize((w, h), PILImage.LANCZOS)).astype(alpha.dtype)
    elif args.drop is not None:
        pixels, mask = degrade.drop_pixels(img.pixels, args.drop, seed=args.seed)
    else:
        pixels = degrade.blur(img.pixels, args.blur)
    write_image(args.output, pixels, bit_depth=img.bit_depth, alpha=alpha)
    if mask is not None and args.mask_out:
        write_image(args.mask_out, mask[..., None])
    if not args.quiet:
        h, w = pixels.shape[:2]
        print(f"wrote {args.output} ({w}x{h})" + (f" and {args.mask_out}" if mask is not None and args.mask_out else ""))
    return 0


def _presets(_: argparse.Namespace) -> int:
    from deepprior.presets import PRESETS

    width = max(len(name) for name in PRESETS)
    for preset in PRESETS.values():
        print(f"{preset.name:<{width}}  [{preset.task}] {preset.summary}")
        print(f"{'':<{width}}  reproduces: {preset.reproduces}; {preset.fit.iterations} steps, lr {preset.fit.lr:g}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from skimage import data

    from deepprior.api import denoise
    from deepprior.degrade import add_noise
    from deepprior.imageio import check_output_path
    from deepprior.metrics import psnr
    from deepprior.presets import get_preset
    from deepprior.report import comparison_figure

    check_output_path(args.output)
    clean = data.astronaut()[40:136, 170:266].astype(np.float32) / 255  # the face, 96x96
    noisy = add_noise(clean, 25 / 255, seed=0)
    if not args.quiet:
        print(f"denoising a 96x96 crop of scikit-image's astronaut (noise sigma 25), {args.iterations} steps ...")
    # The paper's recipe, with the running average debiased so that a short run is not dragged
    # down by its first, blank outputs (see FitConfig.ema_debias).
    base = get_preset("denoise")
    preset = replace(base, name="demo", fit=replace(base.fit, iterations=args.iterations, ema_debias=True))
    restored, result = denoise(noisy, preset=preset, seed=0, device=args.device, progress=not args.quiet,
                               return_result=True)
    p_in, p_out = psnr(clean, noisy), psnr(clean, restored)
    comparison_figure(args.output, [(f"noisy, {p_in:.2f} dB", noisy), (f"deepprior, {p_out:.2f} dB", restored),
                                    ("clean", clean)])
    if not args.quiet:
        print(f"wrote {args.output}: PSNR {p_in:.2f} dB -> {p_out:.2f} dB in {result.seconds:.1f} s")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from deepprior.web import WEB_EXTRA_HINT, serve

    try:
        import gradio  # noqa: F401
    except ImportError:
        raise InputError(WEB_EXTRA_HINT) from None
    print(f"deepprior web app on http://{args.host}:{args.port} (Ctrl-C stops it)")
    serve(args.host, args.port, max_pixels=args.max_pixels, max_upload_mb=args.max_upload_mb,
          concurrency=args.concurrency)
    return 0


def _batch_options(args: argparse.Namespace) -> tuple[str, ...]:
    """The task's own command-line options, as every item will get them."""
    if args.task == "superres" and args.scale is None:
        raise InputError("--task superres needs --scale")
    if args.task == "deblur" and args.kernel is None:
        raise InputError("--task deblur needs --kernel")
    kernel = args.kernel
    if kernel and args.task == "deblur":
        read_kernel(kernel)  # refuse a bad kernel now, not once per image
        kernel = kernel if kernel.startswith("gaussian:") else os.path.abspath(kernel)
    allowed = {"denoise": {"sigma"}, "deblur": {"sigma", "kernel"}, "superres": {"scale", "kernel"}}.get(args.task, set())
    for name in ("sigma", "scale", "kernel"):
        if getattr(args, name) is not None and name not in allowed:
            raise InputError(f"--{name} does not apply to --task {args.task}")
    if args.preset and args.preset.lower().endswith(".json"):
        if not os.path.isfile(args.preset):
            raise InputError(f"preset file '{args.preset}' does not exist")
        args.preset = os.path.abspath(args.preset)
    options: list[str] = []
    for name, value in (("sigma", args.sigma), ("scale", args.scale), ("kernel", kernel), ("preset", args.preset),
                        ("iterations", args.iterations), ("stop", args.stop), ("seed", args.seed),
                        ("precision", args.precision), ("max-memory", args.max_memory), ("tile", args.tile)):
        if value is not None:
            options += [f"--{name}", f"{value:g}" if isinstance(value, float) else str(value)]
    if args.preset:
        from deepprior.presets import get_preset

        try:
            get_preset(args.preset)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return tuple(options)


def _batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepprior.batch import BatchConfig, run_batch, status_report
    from deepprior.batch.pool import cpu_count

    if args.status:
        if args.input or args.output or args.task:
            raise InputError("--status takes only the output folder: deepprior batch --status OUTPUT_DIR")
        print("\n".join(status_report(Path(args.status))))
        return 0
    missing = [flag for flag, value in (("INPUT_DIR", args.input), ("-o OUTPUT_DIR", args.output),
                                        ("--task", args.task)) if not value]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (or use --status OUTPUT_DIR)")
    options = _batch_options(args)
    if args.task != "inpaint" and (args.mask_suffix or args.mask_dir):
        raise InputError("--mask-suffix and --mask-dir are for --task inpaint")
    mask_suffix = args.mask_suffix or ("_mask" if args.task == "inpaint" and not args.mask_dir else None)
    devices: list[str] | None = None
    gpus = 0
    if not args.ray and args.device in ("auto", "cuda"):
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        devices = [f"cuda:{i}" for i in range(gpus)] or None
    if devices is None and args.device != "auto":
        devices = [args.device]
    cpus = cpu_count()
    workers = args.workers or (gpus or max(1, cpus // 2))
    threads = args.threads or max(1, cpus // workers)
    config = BatchConfig(Path(args.input), Path(args.output), args.task, options,
                         patterns=tuple(args.pattern) if args.pattern else BatchConfig.patterns,
                         mask_suffix=mask_suffix, mask_dir=Path(args.mask_dir) if args.mask_dir else None,
                         workers=workers, threads=threads, devices=devices, ray=args.ray, retries=args.retries,
                         quiet=args.quiet)
    summary = run_batch(config)
    if not args.quiet or summary.failed:
        print("\n".join(summary.lines() if not args.quiet else summary.lines()[1:]),
              file=sys.stderr if args.quiet else sys.stdout)
    if summary.interrupted:
        return 130
    return EXIT_FAILURE if summary.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepprior`` command; returns the exit code."""
    from deepprior.imageio import ImageError

    parser = build_parser()
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {"degrade": _degrade, "presets": _presets,
                                                                 "demo": _demo, "serve": _serve, "batch": _batch}
    handler = handlers.get(args.command, run_task)
    try:
        return handler(args)
    except (InputError, ImageError, ValueError) as exc:
        message = " ".join(str(exc).split())
        print(f"deepprior {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"deepprior {args.command}: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # out of memory, or a device failure: one line, no traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"deepprior {args.command}: failed: {first}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
