"""The ``deepprior`` command: arguments in, the pipeline run, one line out.

A subcommand per registered task (:mod:`deepprior.tasks`), plus the tools
(``degrade``, ``presets``, ``demo``, ``serve``, ``batch``). Parsing and
printing live here; the job is built by the registry, checked and run by
:func:`deepprior.pipeline.restore`, and written by :mod:`deepprior.outputs`.
Problems the user can fix end with one line on stderr and exit code 2,
before anything is fitted or written.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from deepprior.version import __version__
from deepprior.jobs import InputError, TaskOptions, check_kernel_fits, gaussian_sigma, read_kernel
from deepprior.noise import NOISE_CHOICES

if TYPE_CHECKING:
    from deepprior.pipeline import Settings

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


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
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
                       help="a classical stage after the fit: for denoising, Wiener filters of the noisy image with the "
                       "fit as pilot, mixed by SURE; for a noiseless measurement (super-resolution, inpainting), the "
                       "output moved the least that explains it exactly (default: as the preset says; the fast "
                       "defaults do, the paper's presets do not)")
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
    "degrade": "deepprior degrade clean.png -o noisy.png --noise 25 --seed 0",
    "demo": "deepprior demo -o demo.png",
    "serve": "deepprior serve --port 7860 --concurrency 1",
    "batch": "deepprior batch photos/ -o restored/ --task denoise --sigma 25 --workers 2\n"
             "  deepprior batch --status restored/",
}

#: How the command line takes each task option (the registry says which tasks take which).
_OPTION_ARGS: dict[str, dict[str, Any]] = {
    "sigma": {"type": _non_negative_float, "help": "the noise level on the 0-255 scale (estimated from the image "
              "when not given)"},
    "noise": {"choices": NOISE_CHOICES, "default": "auto",
              "help": "what the noise is: auto (the default) tells salt-and-pepper noise, a camera's JPEG noise and "
              "Gaussian noise apart by itself; gaussian; camera (a camera's correlated noise, mostly quantised away "
              "by its JPEG; --sigma sets the level it is filtered at); poisson (photon counts, with --peak); "
              "poisson-gaussian (with --peak and --sigma, the Gaussian part); impulse (salt-and-pepper: black and white values, restored as missing pixels)"},
    "peak": {"type": _positive_float, "help": "with --noise poisson or poisson-gaussian: the photon count of a white "
             "pixel (lower is noisier)"},
    "scale": {"type": _scale, "help": "upscaling factor (2 or more)"},
    "kernel": {"help": "the task's kernel"},
}


def _add_task_parser(sub: Any, task: Any, common: argparse.ArgumentParser) -> None:
    """The subcommand of a registered task: its inputs, its options, the run options."""
    p = sub.add_parser(task.name, parents=[common], help=task.summary, description=task.summary,
                       epilog=f"example:\n  {task.example}" if task.example else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    for slot in task.inputs:
        if slot.positional:
            p.add_argument(slot.role, help=slot.help)
        else:
            p.add_argument(f"--{slot.role.replace('_', '-')}", dest=slot.role, required=True, help=slot.help)
    p.add_argument("-o", "--output", required=True, help="where to write the result")
    for name in task.takes:
        spec = {**_OPTION_ARGS[name], "required": name in task.required}
        if name in task.option_help:
            spec["help"] = task.option_help[name]
        p.add_argument(f"--{name}", **spec)


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per registered task (:mod:`deepprior.tasks`), and the tools."""
    from deepprior.tasks import TASKS

    parser = _Parser(prog="deepprior", description="Restore images with the Deep Image Prior: no training data, "
                     "no pretrained weights, one image at a time.")
    parser.add_argument("--version", action="version", version=f"deepprior {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = _common_options()
    for task in TASKS.values():
        _add_task_parser(sub, task, common)

    from deepprior.degrade import IMPULSE_KINDS

    p = sub.add_parser("degrade", help="Make a test input from a clean image.", description="Make a test input from a "
                       "clean image: Gaussian (optionally correlated), Poisson or impulse noise, Lanczos "
                       "downscaling, random pixel drop or blur.",
                       epilog=f"example:\n  {EXAMPLES['degrade']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="the clean image")
    p.add_argument("-o", "--output", required=True, help="where to write the degraded image")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--noise", type=_non_negative_float, metavar="SIGMA", help="Gaussian noise, sigma on the 0-255 scale")
    how.add_argument("--poisson", type=_positive_float, metavar="PEAK",
                     help="Poisson (photon-count) noise; PEAK is the count of white, lower is noisier")
    how.add_argument("--impulse", type=_probability, metavar="FRACTION",
                     help="impulse noise: replace this fraction of the values (see --impulse-kind)")
    how.add_argument("--downscale", type=_scale, metavar="S", help="shrink by S with Lanczos (as the SR benchmarks)")
    how.add_argument("--drop", type=_probability, metavar="P", help="zero each pixel with probability P")
    how.add_argument("--blur", type=_gaussian_spec, metavar="gaussian:SIGMA", help="Gaussian blur")
    p.add_argument("--correlation", type=_non_negative_float, default=0.0, metavar="PX",
                   help="with --noise: correlate the noise over PX pixels (a Gaussian blur of white noise), as in "
                   "camera photos")
    p.add_argument("--jpeg", type=int, metavar="QUALITY",
                   help="save the result as a JPEG of this quality (1-100) with half-resolution colour, as a camera "
                   "does (the output must be .jpg)")
    p.add_argument("--impulse-kind", choices=IMPULSE_KINDS, default="salt-pepper",
                   help="with --impulse: black or white values (salt-pepper, the default) or uniform random ones")
    p.add_argument("--mask-out", metavar="M", help="with --drop: also write the mask (white = kept)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    p.add_argument("--seed", type=_seed, metavar="N", help="random seed")

    sub.add_parser("presets", help="List the tasks, their recipes and what each reproduces.")

    p = sub.add_parser("demo", help="Denoise a small photo shipped with scikit-image with the default recipe and "
                       "write a before / after figure.",
                       epilog=f"example:\n  {EXAMPLES['demo']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="deepprior-demo.png", help="comparison figure (default deepprior-demo.png)")
    p.add_argument("--iterations", type=_positive_int, metavar="N",
                   help="run exactly N steps (default: the default recipe, stopped automatically)")
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
    p.add_argument("--max-steps", type=_positive_int, default=None, metavar="N",
                   help="no run takes more steps than N (default: each recipe's own cap)")
    p.add_argument("--auth-file", metavar="FILE", help="ask for a user name and password: FILE holds one "
                   "user:password a line (keep it chmod 600; behind a reverse proxy with TLS, see docs/web.md)")
    _add_batch_parser(sub)
    return parser


def _add_batch_parser(sub: Any) -> None:
    from deepprior.tasks import TASKS

    p = sub.add_parser("batch", help="Restore every image in a folder (resumable; local workers or Ray).",
                       description="Restore every matching image under INPUT_DIR into OUTPUT_DIR, mirroring the "
                       "folder tree. A manifest in OUTPUT_DIR records each image, so running the same command again "
                       "resumes: finished images are skipped, failed ones retried, unfinished ones redone.",
                       epilog=f"example:\n  {EXAMPLES['batch']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", metavar="INPUT_DIR", help="folder of images (searched recursively)")
    p.add_argument("-o", "--output", metavar="OUTPUT_DIR", help="where the outputs and the manifest go")
    p.add_argument("--status", metavar="OUTPUT_DIR", help="print the state of the batch in OUTPUT_DIR and exit")
    p.add_argument("--verify", metavar="OUTPUT_DIR", help="check the batch in OUTPUT_DIR: the manifest's integrity, "
                   "every done image's output against its recorded hash, nothing finished twice, no half-written "
                   "files; exit 1 on a problem")
    p.add_argument("--task", choices=[name for name, task in TASKS.items() if task.batch],
                   help="what to do to every image")
    group = p.add_argument_group("task options (as for the single-image commands)")
    group.add_argument("--sigma", type=_non_negative_float, help="denoise / deblur: noise level on the 0-255 scale "
                       "(estimated per image when not given)")
    group.add_argument("--noise", choices=_OPTION_ARGS["noise"]["choices"], help="denoise: " +
                       _OPTION_ARGS["noise"]["help"])
    group.add_argument("--peak", type=_positive_float, help="denoise: " + _OPTION_ARGS["peak"]["help"])
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


# ------------------------------------------------------------------- running
class _SignalStop:
    """While a fit runs, SIGINT and SIGTERM end it cleanly at the next step (the loop then writes its
    checkpoint, and the command the best output so far) instead of killing the process."""

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


def task_options(args: argparse.Namespace) -> TaskOptions:
    """The task's own options from the command line: sigma moves from the 0-255 scale to [0, 1] here, once."""
    sigma = getattr(args, "sigma", None)
    return TaskOptions(sigma=sigma / 255 if sigma is not None else None, scale=getattr(args, "scale", None),
                       kernel=getattr(args, "kernel", None), noise=getattr(args, "noise", None) or "auto",
                       peak=getattr(args, "peak", None))


def run_settings(args: argparse.Namespace, callbacks: Sequence[Callable[[Any], Any]] = ()) -> Settings:
    """The pipeline settings from the command line's run options."""
    from deepprior.pipeline import Settings

    return Settings(preset=args.preset, iterations=args.iterations, stop=args.stop, seed=args.seed,
                    device=args.device, precision=args.precision, refine=getattr(args, "refine", None),
                    tile=args.tile, tile_overlap=getattr(args, "tile_overlap", 32), max_memory=args.max_memory,
                    checkpoint=getattr(args, "checkpoint", None), checkpoint_every=getattr(args, "checkpoint_every", 100),
                    resume=getattr(args, "resume", False), progress=not args.quiet, callbacks=tuple(callbacks))


def _summary(restored: Any, output: str) -> str:
    job, result = restored.job, restored.result
    h, w = job.image_size
    line = (f"wrote {output} ({w}x{h}): {job.task} with preset '{restored.preset.name}', {result.iterations_run} "
            f"iterations in {result.seconds:.1f} s on {restored.device} (stop: {result.stop_reason}, "
            f"seed {restored.seed})")
    if job.ground_truth is not None:
        shown = [f"input {restored.input_psnr:.2f} dB" if restored.input_psnr is not None else "input = ground truth"]
        if restored.reference_psnr is not None and job.reference is not None:
            shown.append(f"{job.reference[0]} {restored.reference_psnr:.2f} dB")
        value = f"{restored.psnr:.2f} dB" if restored.psnr is not None else "infinite (equal to the ground truth)"
        line += f"; PSNR {value} ({', '.join(shown)})"
    return line


def run_task(args: argparse.Namespace) -> int:
    """Run one restoration subcommand from its parsed arguments; return the exit code (0, or 130 when a
    signal stopped the fit early). Problems with the input raise :class:`InputError` or ``ImageError``
    before anything is fitted or written."""
    from deepprior.outputs import check_targets, snapshot_callback, write_report, write_result
    from deepprior.pipeline import plan, restore
    from deepprior.tasks import TASKS, JobSpec, build_job

    task = TASKS[args.command]
    spec = JobSpec(task.name, {slot.role: getattr(args, slot.role) for slot in task.inputs}, task_options(args),
                   args.ground_truth)
    job = build_job(spec)
    if args.preset and args.preset.lower().endswith(".json"):
        job.inputs.append(args.preset)
    if args.resume and not (args.checkpoint and os.path.isfile(args.checkpoint)):
        raise InputError("--resume needs --checkpoint FILE naming an existing checkpoint")
    check_targets(args.output, job.inputs, record=args.record, report=args.report, snapshots=args.snapshots,
                  checkpoint=args.checkpoint)
    if args.tile and args.snapshots:
        raise InputError("--tile does not go with --snapshots")
    signals = _SignalStop()
    callbacks = [snapshot_callback(args.snapshots, args.every, job.bit_depth)] if args.snapshots else []
    try:
        settings = run_settings(args, [*callbacks, signals])
        checked = plan(job, settings)
        noise = job.measurement.noise
        if not args.quiet and getattr(noise, "source", "given") != "given":  # the image decided: say what
            print(noise.summary())
        restored = restore(job, settings, checked)
    finally:
        signals.restore()
    write_result(restored, args.output, args.record)
    if args.report:
        write_report(args.report, restored)
    if signals.received:
        print(f"deepprior {job.task}: stopped by {signals.received} at iteration {restored.result.iterations_run}; "
              f"wrote the best result so far to {args.output}" + (f" and the checkpoint {args.checkpoint} (continue "
                                                                  f"with --resume)" if args.checkpoint else ""),
              file=sys.stderr)
        return 130
    if not args.quiet:
        print(_summary(restored, args.output))
    return 0


def _degrade(args: argparse.Namespace) -> int:
    from deepprior.degrade import degrade_image
    from deepprior.imageio import check_output_path, read_image, write_image

    img = read_image(args.input)
    if args.mask_out and args.drop is None:
        raise InputError("--mask-out only goes with --drop")
    if args.correlation and args.noise is None:
        raise InputError("--correlation only goes with --noise")
    if args.impulse_kind != "salt-pepper" and args.impulse is None:
        raise InputError("--impulse-kind only goes with --impulse")
    if args.jpeg is not None and (not 1 <= args.jpeg <= 100
                                  or not args.output.lower().endswith((".jpg", ".jpeg"))):
        raise InputError(f"--jpeg {args.jpeg}: a JPEG quality from 1 to 100, with a .jpg output")
    for out in [args.output] + ([args.mask_out] if args.mask_out else []):
        check_output_path(out, args.input)
    if args.mask_out and os.path.abspath(args.mask_out) == os.path.abspath(args.output):
        raise InputError("--mask-out and -o name the same file")
    if args.blur is not None:
        from deepprior.operators import Blur

        check_kernel_fits(Blur.gaussian(args.blur), img.height, img.width, f"--blur gaussian:{args.blur:g}")
    made = degrade_image(img.pixels, img.alpha, noise=args.noise / 255 if args.noise is not None else None,
                         correlation=args.correlation, poisson=args.poisson, impulse=args.impulse,
                         impulse_kind=args.impulse_kind, downscale_by=args.downscale, drop=args.drop,
                         blur_sigma=args.blur, seed=args.seed)
    write_image(args.output, made.pixels, bit_depth=img.bit_depth, alpha=made.alpha, jpeg_quality=args.jpeg)
    if made.mask is not None and args.mask_out:
        write_image(args.mask_out, made.mask[..., None])
    if not args.quiet:
        h, w = made.pixels.shape[:2]
        print(f"wrote {args.output} ({w}x{h})" + (f" and {args.mask_out}" if made.mask is not None and args.mask_out
                                                  else ""))
    return 0


def _presets(_: argparse.Namespace) -> int:
    from deepprior.presets import PRESETS
    from deepprior.tasks import TASKS, presets_for

    width = max(len(name) for name in PRESETS)
    for task in TASKS.values():
        default = task.default_preset if isinstance(task.default_preset, str) else "chosen from the input"
        print(f"{task.name}: {task.summary} (automatic stop: {task.stopping}; default recipe: {default})")
        for name in presets_for(task):
            preset = PRESETS[name]
            print(f"  {preset.name:<{width}}  {preset.summary}")
            print(f"  {'':<{width}}  reproduces: {preset.reproduces}; {preset.fit.iterations} steps, "
                  f"lr {preset.fit.lr:g}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from skimage import data

    from deepprior.api import denoise
    from deepprior.degrade import add_noise
    from deepprior.imageio import check_output_path
    from deepprior.metrics import psnr
    from deepprior.report import comparison_figure

    check_output_path(args.output)
    clean = data.astronaut()[40:136, 170:266].astype(np.float32) / 255  # the face, 96x96
    noisy = add_noise(clean, 25 / 255, seed=0)
    if not args.quiet:
        print("denoising a 96x96 crop of scikit-image's astronaut (noise sigma 25) with the default recipe ...")
    restored, result = denoise(noisy, seed=0, device=args.device, iterations=args.iterations,
                               progress=not args.quiet, return_result=True)
    p_in, p_out = psnr(clean, noisy), psnr(clean, restored)
    comparison_figure(args.output, [(f"noisy, {p_in:.2f} dB", noisy), (f"deepprior, {p_out:.2f} dB", restored),
                                    ("clean", clean)])
    if not args.quiet:
        print(f"wrote {args.output}: PSNR {p_in:.2f} dB -> {p_out:.2f} dB in {result.seconds:.1f} s "
              f"({result.iterations_run} steps; {result.stop_reason})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from deepprior.web import WEB_EXTRA_HINT, read_auth_file, readable_by_others, serve

    auth = None
    if args.auth_file:
        try:
            auth = read_auth_file(args.auth_file)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if readable_by_others(args.auth_file):
            print(f"warning: other users can read '{args.auth_file}' (chmod 600 it)", file=sys.stderr)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise InputError(WEB_EXTRA_HINT) from None
    print(f"deepprior web app on http://{args.host}:{args.port}" + (f" ({len(auth)} account(s))" if auth else "")
          + " (Ctrl-C stops it)")
    serve(args.host, args.port, max_pixels=args.max_pixels, max_upload_mb=args.max_upload_mb,
          concurrency=args.concurrency, max_steps=args.max_steps, auth=auth)
    return 0


def _batch_options(args: argparse.Namespace) -> TaskOptions:
    """The task's own options, as every item will get them, checked once for the whole batch."""
    from deepprior.tasks import get_task

    task = get_task(args.task)
    for name in task.required:
        if getattr(args, name) is None:
            raise InputError(f"--task {args.task} needs --{name}")
    for name in ("sigma", "noise", "peak", "scale", "kernel"):
        if getattr(args, name) is not None and name not in task.takes:
            raise InputError(f"--{name} does not apply to --task {args.task}")
    if args.kernel and args.task == "deblur":
        read_kernel(args.kernel)  # refuse a bad kernel now, not once per image
        if not args.kernel.startswith("gaussian:"):
            args.kernel = os.path.abspath(args.kernel)
    if args.preset:
        from deepprior.presets import get_preset

        if args.preset.lower().endswith(".json"):
            if not os.path.isfile(args.preset):
                raise InputError(f"preset file '{args.preset}' does not exist")
            args.preset = os.path.abspath(args.preset)
        try:
            get_preset(args.preset)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return task_options(args)


def _batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deepprior.batch import BatchConfig, run_batch, status_report, verify_batch
    from deepprior.batch.pool import cpu_count

    for flag, folder in (("--status", args.status), ("--verify", args.verify)):
        if folder and (args.input or args.output or args.task or args.status and args.verify):
            raise InputError(f"{flag} takes only the output folder: deepprior batch {flag} OUTPUT_DIR")
    if args.status:
        print("\n".join(status_report(Path(args.status))))
        return 0
    if args.verify:
        sound, lines = verify_batch(Path(args.verify))
        print("\n".join(lines))
        return 0 if sound else 1
    missing = [flag for flag, value in (("INPUT_DIR", args.input), ("-o OUTPUT_DIR", args.output),
                                        ("--task", args.task)) if not value]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (or use --status or --verify OUTPUT_DIR)")
    options = _batch_options(args)
    from dataclasses import replace

    settings = replace(run_settings(args), progress=False)  # the workers show no bars; the driver has one
    from deepprior.tasks import get_task

    takes_mask = "mask" in [slot.role for slot in get_task(args.task).inputs]
    if not takes_mask and (args.mask_suffix or args.mask_dir):
        raise InputError(f"--mask-suffix and --mask-dir are for tasks with a mask, not {args.task}")
    mask_suffix = args.mask_suffix or ("_mask" if takes_mask and not args.mask_dir else None)
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
    config = BatchConfig(Path(args.input), Path(args.output), args.task, options, settings,
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
