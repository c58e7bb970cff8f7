"""Restoration jobs: one task's inputs checked and assembled into what the pipeline fits.

A job builder takes the task's decoded input images (by role: ``image``, ``mask``, ``flash``...) and its
options, checks everything that can be checked before any work starts, and returns a :class:`Job`. The
builders know nothing of files or interfaces: the registry (:mod:`deepprior.tasks`) reads files for the
command line, the web app and batch workers, and wraps arrays for the NumPy API, then calls them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepprior.imageio import Image
from deepprior.measurement import Measurement

__all__ = [
    "MAX_OUTPUT_PIXELS",
    "InputError",
    "Job",
    "TaskOptions",
    "check_kernel_fits",
    "deblur_job",
    "dejpeg_job",
    "denoise_job",
    "flash_job",
    "gaussian_sigma",
    "inpaint_job",
    "largest_gap",
    "match_channels",
    "read_kernel",
    "superres_job",
]

MAX_OUTPUT_PIXELS = 100_000_000  # far beyond what a DIP fit can handle in memory


class InputError(ValueError):
    """A problem with the user's input that they can fix: one line (exit code 2 on the command line)."""


@dataclass(frozen=True)
class TaskOptions:
    """A task's own options, typed and on one scale.

    sigma : the noise level on the image's [0, 1] scale (``None``: estimated from the image), for tasks
        whose measurement is noisy.
    noise : what the noise is, one of :data:`deepprior.noise.NOISE_CHOICES` (``"auto"``: decided from the
        image), for tasks whose measurement is noisy. With ``poisson-gaussian``, ``sigma`` is the Gaussian part.
    peak : for Poisson noise, the photon count of a white pixel (lower is noisier).
    scale : the super-resolution factor.
    kernel : super-resolution: the downsampling kernel's name; deblurring: ``gaussian:SIGMA``, a kernel
        file, a 2-D array, or a Gaussian width in pixels.
    """

    sigma: float | None = None
    scale: int | None = None
    kernel: str | np.ndarray | float | None = None
    noise: str = "auto"
    peak: float | None = None

    def __post_init__(self) -> None:
        from deepprior.noise import NOISE_CHOICES

        if self.sigma is not None and not 0.0 <= self.sigma <= 1.0:
            raise InputError(f"sigma is on the image's [0, 1] scale (25 of 255 is {25 / 255:.4f}), got {self.sigma}")
        if self.noise not in NOISE_CHOICES:
            raise InputError(f"unknown noise {self.noise!r} (use {', '.join(NOISE_CHOICES)})")
        if self.sigma is not None and self.noise not in ("auto", "gaussian", "camera", "poisson-gaussian"):
            raise InputError(f"a noise sigma goes with Gaussian noise, not {self.noise} noise")
        if self.noise == "camera" and self.sigma == 0:
            raise InputError("camera noise is filtered at a level above 0 (--sigma), got 0")
        poisson = self.noise in ("poisson", "poisson-gaussian")
        if self.peak is not None and not poisson:
            raise InputError("a peak count goes with Poisson noise (--noise poisson or poisson-gaussian)")
        if poisson and self.peak is None:
            raise InputError(f"{self.noise} noise needs its peak count (--peak: the count of a white pixel)")
        if self.peak is not None and not 0 < self.peak <= 1e6:
            raise InputError(f"the peak count must be above 0 and at most a million, got {self.peak}")
        if self.noise == "poisson-gaussian" and self.sigma is None:
            raise InputError("poisson-gaussian noise needs the level of its Gaussian part (--sigma)")
        if self.scale is not None and (int(self.scale) != self.scale or self.scale < 2):
            raise InputError(f"scale must be a whole number >= 2, got {self.scale}")

    def given(self) -> dict[str, Any]:
        """The options set, for records and messages (arrays shown by their shape)."""
        shown = {"sigma": self.sigma, "scale": self.scale,
                 "kernel": f"array {np.shape(self.kernel)}" if isinstance(self.kernel, np.ndarray) else self.kernel,
                 "noise": None if self.noise == "auto" else self.noise, "peak": self.peak}
        return {k: v for k, v in shown.items() if v is not None}


@dataclass
class Job:
    """Everything a restoration needs, assembled from a task's inputs.

    Attributes
    ----------
    task : the task's name (:mod:`deepprior.tasks`).
    measurement : ``y``, its operator and noise model, and the size of the image to restore.
    inputs : the files it was read from (records; outputs must not overwrite them).
    bit_depth, alpha : how to write the result: the input's precision and its transparency, at the output size.
    baseline : the corrupted input shown at the output size (figures, the input's PSNR).
    reference : a classical method's result, ``(name, image)``, for comparison.
    guide : an image fed to the network instead of noise (the flash photo).
    ground_truth : the clean image, to measure against (never used by the fit).
    details : task facts for the record (scale, kernel, known fraction).
    """

    task: str
    measurement: Measurement
    inputs: list[str] = field(default_factory=list)
    bit_depth: int = 8
    alpha: np.ndarray | None = None
    baseline: np.ndarray | None = None
    reference: tuple[str, np.ndarray] | None = None
    guide: np.ndarray | None = None
    ground_truth: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.measurement.image_size

    @property
    def channels(self) -> int:
        return self.measurement.channels


def _named(image: Image, role: str) -> str:
    """How messages name an input: its file, or its role for arrays."""
    return f"{role} '{image.path}'" if image.path else role


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


def read_kernel(spec: str | np.ndarray | float) -> tuple[Any, str]:
    """A blur operator from ``gaussian:SIGMA``, a ``.npy`` or image file, an array or a width; and its name."""
    from deepprior.imageio import read_image
    from deepprior.operators import Blur

    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        if not spec > 0 or spec == float("inf"):
            raise InputError(f"blur sigma must be a finite number > 0, got {spec}")
        return Blur.gaussian(float(spec)), f"gaussian:{spec:g}"
    if isinstance(spec, np.ndarray):
        kernel, name = spec, f"array {spec.shape}"
    elif spec.startswith("gaussian:"):
        try:
            return Blur.gaussian(gaussian_sigma(spec)), spec
        except ValueError as exc:
            raise InputError(f"--kernel: {exc}") from None
    elif not os.path.exists(spec):
        raise InputError(f"kernel '{spec}' does not exist (use gaussian:SIGMA or a .npy / image file)")
    elif spec.lower().endswith(".npy"):
        try:
            kernel, name = np.load(spec, allow_pickle=False), spec
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read kernel '{spec}': {exc}") from None
    else:
        kernel, name = read_image(spec).pixels.mean(axis=2), spec
    kernel = np.asarray(kernel, dtype=np.float32)
    if (kernel.ndim != 2 or kernel.size == 0 or not np.isfinite(kernel).all() or (kernel < 0).any()
            or not kernel.sum() > 0):
        raise InputError(f"kernel '{name}' must be a 2-D array of finite, non-negative values with a positive sum")
    return Blur(kernel), name


def _upscale(pixels: np.ndarray, scale: int, resample: int) -> np.ndarray:
    from PIL import Image as PILImage

    h, w = pixels.shape[:2]
    planes = [np.asarray(PILImage.fromarray(pixels[..., c].astype(np.float32), mode="F").resize((w * scale, h * scale),
                                                                                                 resample))
              for c in range(pixels.shape[2])]
    return np.clip(np.stack(planes, axis=-1), 0, 1).astype(np.float32)


def _sources(*images: Image) -> list[str]:
    return [img.path for img in images if img.path]


def denoise_job(images: Mapping[str, Image], options: TaskOptions) -> Job:
    """Denoising: ``y = x + n``; the noise model is attached by the registry (given or estimated sigma)."""
    img = images["image"]
    return Job("denoise", Measurement(img.pixels), _sources(img), img.bit_depth, img.alpha, baseline=img.pixels)


def dejpeg_job(images: Mapping[str, Image], options: TaskOptions) -> Job:
    """JPEG artefact removal: ``y = x`` plus compression artefacts, no noise model."""
    img = images["image"]
    return Job("dejpeg", Measurement(img.pixels), _sources(img), img.bit_depth, img.alpha, baseline=img.pixels)


def superres_job(images: Mapping[str, Image], options: TaskOptions) -> Job:
    """Super-resolution: ``y`` is ``x`` downsampled by ``scale`` through ``kernel`` (default Lanczos-2)."""
    from PIL import Image as PILImage

    from deepprior.operators import RESAMPLING_KERNELS, Downsample

    kernel = options.kernel if options.kernel is not None else "lanczos2"
    if kernel not in RESAMPLING_KERNELS:
        raise InputError(f"unknown kernel {kernel!r} (use {', '.join(RESAMPLING_KERNELS)})")
    if options.scale is None:
        raise InputError("super-resolution needs the scale")
    scale = int(options.scale)
    img = images["image"]
    h, w = img.pixels.shape[:2]
    if h * w * scale**2 > MAX_OUTPUT_PIXELS:
        raise InputError(f"a {w}x{h} image upscaled {scale}x would be {w * scale}x{h * scale}; "
                         f"outputs above {MAX_OUTPUT_PIXELS // 10**6} megapixels are refused")
    alpha = None
    if img.alpha is not None:
        scaled = PILImage.fromarray(img.alpha).resize((w * scale, h * scale), PILImage.BICUBIC)
        alpha = np.asarray(scaled).astype(img.alpha.dtype)
    measurement = Measurement(img.pixels, Downsample(scale, kernel), image_size=(h * scale, w * scale))
    return Job("superres", measurement, _sources(img), img.bit_depth, alpha,
               baseline=_upscale(img.pixels, scale, PILImage.NEAREST),
               reference=("bicubic", _upscale(img.pixels, scale, PILImage.BICUBIC)),
               details={"scale": scale, "kernel": kernel})


def inpaint_job(images: Mapping[str, Image], options: TaskOptions) -> Job:
    """Inpainting: ``y = m * x`` with the mask image's white pixels known and its black ones to fill."""
    from deepprior.operators import Mask

    img, mask_img = images["image"], images["mask"]
    if mask_img.pixels.shape[:2] != img.pixels.shape[:2]:
        raise InputError(f"{_named(mask_img, 'mask')} is {mask_img.width}x{mask_img.height} but the image is "
                         f"{img.width}x{img.height}")
    known = mask_img.pixels > 0.5
    if known.shape[2] > 1 and (known != known[..., :1]).any():  # a per-channel mask
        known = match_channels(known.astype(np.float32), img.channels, _named(mask_img, "mask")) > 0.5
    else:
        known = known[..., :1]
    mask = known.astype(np.float32)
    if mask.min() == 1.0:
        raise InputError(f"{_named(mask_img, 'mask')} is all white: there is nothing to fill")
    if mask.max() == 0.0:
        raise InputError(f"{_named(mask_img, 'mask')} is all black: no pixel is known (white = known)")
    operator = Mask(mask[..., 0] if mask.shape[2] == 1 else mask)
    details = {"known_fraction": round(float(mask.mean()), 6), "largest_gap": largest_gap(mask)}
    return Job("inpaint", Measurement(img.pixels, operator), _sources(img, mask_img), img.bit_depth, img.alpha,
               baseline=img.pixels * mask, details=details)


def largest_gap(mask: np.ndarray) -> float:
    """How far (pixels) the unknown pixel farthest from any known one lies: about 1-2 for scattered missing
    pixels, half the stroke width for text and scratches, the radius of the largest hole otherwise.

    >>> m = np.ones((9, 9, 1)); m[2:7, 2:7] = 0
    >>> largest_gap(m)
    3.0
    """
    from scipy.ndimage import distance_transform_edt

    unknown = (np.asarray(mask) < 0.5).any(axis=-1) if np.ndim(mask) == 3 else np.asarray(mask) < 0.5
    return round(float(distance_transform_edt(unknown).max()), 2) if unknown.any() else 0.0


def deblur_job(images: Mapping[str, Image], options: TaskOptions) -> Job:
    """Deblurring: ``y = k * x + n`` for a known kernel ``k``."""
    if options.kernel is None:
        raise InputError("deblurring needs the blur kernel")
    operator, name = read_kernel(options.kernel)
    img = images["image"]
    check_kernel_fits(operator, img.height, img.width, f"blur kernel '{name}'")
    files = _sources(img) + ([name] if isinstance(options.kernel, str) and not name.startswith("gaussian:") else [])
    return Job("deblur", Measurement(img.pixels, operator), files, img.bit_depth, img.alpha, baseline=img.pixels,
               details={"kernel": name})


def flash_job(images: Mapping[str, Image], options: TaskOptions) -> Job:
    """Flash / no-flash: the no-flash photo is ``y``, the flash photo drives the network."""
    flash, no_flash = images["flash"], images["no_flash"]
    if flash.pixels.shape[:2] != no_flash.pixels.shape[:2]:
        raise InputError(f"flash image is {flash.width}x{flash.height} but the no-flash image is "
                         f"{no_flash.width}x{no_flash.height}")
    guide = match_channels(flash.pixels, no_flash.channels, "flash image")
    return Job("flash", Measurement(no_flash.pixels), _sources(flash, no_flash), no_flash.bit_depth, no_flash.alpha,
               baseline=no_flash.pixels, guide=guide)
