"""Restoration jobs: the inputs of one task read, checked and assembled, before any fitting.

The command line, the web app and the batch workers all build their jobs here,
from the same arguments, so they accept, refuse and word problems alike.
Everything that can be checked is checked here, before any work starts.
"""
from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepprior import __version__
from deepprior.presets import default_denoise_preset

__all__ = ["JOBS", "MAX_OUTPUT_PIXELS", "InputError", "Job", "build_record", "check_kernel_fits", "gaussian_sigma",
           "match_channels", "read_input", "read_kernel", "versions"]

MAX_OUTPUT_PIXELS = 100_000_000  # far beyond what a DIP fit can handle in memory


class InputError(ValueError):
    """A problem with the user's input that they can fix: one line (exit code 2 on the command line)."""


def gaussian_sigma(text: str) -> float:
    """The width of a ``gaussian:SIGMA`` blur specification.

    >>> gaussian_sigma("gaussian:1.6")
    1.6
    """
    prefix = "gaussian:"
    if not text.startswith(prefix):
        raise ValueError(f"expected gaussian:SIGMA, got {text!r}")
    try:
        value = float(text[len(prefix):])
    except ValueError:
        raise ValueError(f"expected a number after gaussian:, got {text[len(prefix):]!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"blur sigma must be a finite number > 0, got {text[len(prefix):]}")
    return value


def read_input(path: str, what: str = "input") -> Any:
    """Read an image given on the command line (``what`` names it in messages)."""
    from deepprior.imageio import read_image

    if path is None:
        raise InputError(f"no {what} image given")
    return read_image(path)


def check_kernel_fits(blur: Any, height: int, width: int, what: str) -> None:
    kh, kw = blur.kernel.shape[-2:]
    if kh // 2 >= height or kw // 2 >= width:
        raise InputError(f"{what} ({kw}x{kh}) is too large for the {width}x{height} image")


def match_channels(pixels: np.ndarray, channels: int, what: str) -> np.ndarray:
    if pixels.shape[2] == channels:
        return pixels
    if pixels.shape[2] == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 3 and channels == 1:
        from skimage.color import rgb2gray

        return rgb2gray(pixels)[..., None].astype(np.float32)
    raise InputError(f"{what} has {pixels.shape[2]} channels, expected {channels}")


def versions() -> dict[str, str]:
    import PIL
    import skimage
    import torch

    return {"deepprior": __version__, "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "scikit-image": skimage.__version__, "python": platform.python_version()}


@dataclass
class Job:
    """Everything a restoration task needs, assembled from the arguments."""

    task: str
    preset: str
    image: Any  # deepprior.imageio.Image: the corrupted input as read
    measurement: np.ndarray
    operator: Any
    image_size: tuple[int, int]
    inputs: list[str]
    baseline: np.ndarray | None = None  # the corrupted input shown at the output size, for PSNR and figures
    reference: tuple[str, np.ndarray] | None = None  # a classical method's result, for comparison
    guide: np.ndarray | None = None
    alpha: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _noise_level(args: argparse.Namespace, pixels: np.ndarray) -> tuple[float, str]:
    """``--sigma`` (0-255 scale), or an estimate from the image, with where it came from."""
    if args.sigma is not None:
        return args.sigma, "given"
    from deepprior.noise import estimate_sigma

    sigma = estimate_sigma(pixels) * 255
    if not args.quiet:
        print(f"estimated noise sigma: {sigma:.1f} (of 255)")
    return sigma, "estimated"


def _denoise_job(args: argparse.Namespace) -> Job:
    img = read_input(args.input)
    sigma, source = _noise_level(args, img.pixels)
    preset = args.preset or default_denoise_preset(sigma)
    return Job("denoise", preset, img, img.pixels, None, img.pixels.shape[:2], [args.input], baseline=img.pixels,
               alpha=img.alpha, extra={"sigma": round(sigma, 3), "sigma_source": source})


def _dejpeg_job(args: argparse.Namespace) -> Job:
    img = read_input(args.input)
    return Job("dejpeg", args.preset or "dejpeg", img, img.pixels, None, img.pixels.shape[:2], [args.input],
               baseline=img.pixels, alpha=img.alpha)


def _upscale(pixels: np.ndarray, scale: int, resample: int) -> np.ndarray:
    from PIL import Image as PILImage

    h, w = pixels.shape[:2]
    planes = [np.asarray(PILImage.fromarray(pixels[..., c].astype(np.float32), mode="F").resize((w * scale, h * scale), resample))
              for c in range(pixels.shape[2])]
    return np.clip(np.stack(planes, axis=-1), 0, 1).astype(np.float32)


def _superres_job(args: argparse.Namespace) -> Job:
    from PIL import Image as PILImage

    from deepprior.operators import RESAMPLING_KERNELS, Downsample

    if args.kernel not in RESAMPLING_KERNELS:
        raise InputError(f"unknown kernel {args.kernel!r} (use {', '.join(RESAMPLING_KERNELS)})")
    img = read_input(args.input)
    h, w = img.pixels.shape[:2]
    if h * w * args.scale**2 > MAX_OUTPUT_PIXELS:
        raise InputError(f"a {w}x{h} image upscaled {args.scale}x would be {w * args.scale}x{h * args.scale}; "
                       f"outputs above {MAX_OUTPUT_PIXELS // 10**6} megapixels are refused")
    alpha = None
    if img.alpha is not None:
        scale_alpha = PILImage.fromarray(img.alpha).resize((w * args.scale, h * args.scale), PILImage.BICUBIC)
        alpha = np.asarray(scale_alpha).astype(img.alpha.dtype)
    preset = args.preset or ("superres-x8" if args.scale >= 8 else "superres")
    return Job("superres", preset, img, img.pixels, Downsample(args.scale, args.kernel), (h * args.scale, w * args.scale),
               [args.input], baseline=_upscale(img.pixels, args.scale, PILImage.NEAREST), alpha=alpha,
               extra={"scale": args.scale, "kernel": args.kernel},
               reference=("bicubic", _upscale(img.pixels, args.scale, PILImage.BICUBIC)))


def _inpaint_job(args: argparse.Namespace) -> Job:
    from deepprior.operators import Mask

    img = read_input(args.input)
    mask_img = read_input(args.mask, "mask")
    if mask_img.pixels.shape[:2] != img.pixels.shape[:2]:
        mh, mw = mask_img.pixels.shape[:2]
        raise InputError(f"mask '{args.mask}' is {mw}x{mh} but the image is {img.width}x{img.height}")
    mask = (mask_img.pixels.mean(axis=2) > 0.5).astype(np.float32)
    if mask.min() == 1.0:
        raise InputError(f"mask '{args.mask}' is all white: there is nothing to fill")
    if mask.max() == 0.0:
        raise InputError(f"mask '{args.mask}' is all black: no pixel is known (white = known)")
    return Job("inpaint", args.preset or "inpaint-text", img, img.pixels, Mask(mask), img.pixels.shape[:2],
               [args.input, args.mask], baseline=img.pixels * mask[..., None], alpha=img.alpha,
               extra={"known_fraction": float(mask.mean())})


def read_kernel(spec: str) -> tuple[Any, str]:
    from deepprior.operators import Blur

    if spec.startswith("gaussian:"):
        try:
            sigma = gaussian_sigma(spec)
        except ValueError as exc:
            raise InputError(f"--kernel: {exc}") from None
        return Blur.gaussian(sigma), spec
    if not os.path.exists(spec):
        raise InputError(f"kernel '{spec}' does not exist (use gaussian:SIGMA or a .npy / image file)")
    if spec.lower().endswith(".npy"):
        try:
            kernel = np.load(spec, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read kernel '{spec}': {exc}") from None
    else:
        kernel = read_input(spec, "kernel").pixels.mean(axis=2)
    kernel = np.asarray(kernel, dtype=np.float32)
    if (kernel.ndim != 2 or kernel.size == 0 or not np.isfinite(kernel).all() or (kernel < 0).any()
            or not kernel.sum() > 0):
        raise InputError(f"kernel '{spec}' must be a 2-D array of finite, non-negative values with a positive sum")
    return Blur(kernel), spec


def _deblur_job(args: argparse.Namespace) -> Job:
    operator, spec = read_kernel(args.kernel)
    img = read_input(args.input)
    check_kernel_fits(operator, img.height, img.width, f"blur kernel '{spec}'")
    inputs = [args.input] + ([spec] if not spec.startswith("gaussian:") else [])
    sigma, source = _noise_level(args, img.pixels)
    return Job("deblur", args.preset or "deblur", img, img.pixels, operator, img.pixels.shape[:2], inputs,
               baseline=img.pixels, alpha=img.alpha, extra={"kernel": spec, "sigma": round(sigma, 3),
                                                            "sigma_source": source})


def _flash_job(args: argparse.Namespace) -> Job:
    flash = read_input(args.flash, "flash")
    no_flash = read_input(args.no_flash, "no-flash")
    if flash.pixels.shape[:2] != no_flash.pixels.shape[:2]:
        raise InputError(f"flash image is {flash.width}x{flash.height} but the no-flash image is "
                       f"{no_flash.width}x{no_flash.height}")
    guide = match_channels(flash.pixels, no_flash.pixels.shape[2], "flash image")
    return Job("flash", args.preset or "flash", no_flash, no_flash.pixels, None, no_flash.pixels.shape[:2],
               [args.flash, args.no_flash], baseline=no_flash.pixels, guide=guide, alpha=no_flash.alpha)


JOBS: dict[str, Callable[[argparse.Namespace], Job]] = {
    "denoise": _denoise_job,
    "dejpeg": _dejpeg_job,
    "superres": _superres_job,
    "inpaint": _inpaint_job,
    "deblur": _deblur_job,
    "flash": _flash_job,
}


def build_record(job: Job, preset: Any, result: Any, seed: int, device: Any, *, output: str,
                 ground_truth: str | None = None, psnr: float | None = None,
                 input_psnr: float | None = None) -> dict[str, Any]:
    """The run's record: what was asked, what ran, why it stopped, and its history."""
    channels = job.measurement.shape[2]
    return {
        "task": job.task, "preset": preset.name, "seed": seed, "device": str(device), "precision": result.precision,
        "inputs": job.inputs, "output": output, "ground_truth": ground_truth,
        "image_size": {"height": job.image_size[0], "width": job.image_size[1], "channels": channels},
        "parameters": result.parameters, "iterations_run": result.iterations_run,
        "stop_iteration": result.stop_iteration, "stop_reason": result.stop_reason,
        "seconds": round(result.seconds, 3), "backtracks": result.backtracks, "stopping": result.stopping,
        "refinement": result.refinement or None,
        "psnr": psnr, "input_psnr": input_psnr, "options": job.extra,
        "history": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in result.history],
        "versions": versions(),
    }
