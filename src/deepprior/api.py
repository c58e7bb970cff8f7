"""The NumPy API, in the style of ``skimage.restoration``.

Arrays in, arrays out: float images in [0, 1] (integer images are rescaled
as scikit-image does), ``(H, W)`` grey or ``(H, W, C)`` with ``channel_axis``
saying where the channels are. Each function returns an array of the clean
image's shape, or ``(array, FitResult)`` with ``return_result=True``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from skimage.util import img_as_float32
from torch import nn

from deepprior.engine import run
from deepprior.fitting import FitResult
from deepprior.fitting.result import IterationState
from deepprior.imageio import from_tensor, to_tensor
from deepprior.operators import Blur, Downsample, Mask
from deepprior.presets import Preset, default_denoise_preset, get_preset

__all__ = ["denoise", "dejpeg", "super_resolve", "inpaint", "deblur", "flash_no_flash", "restore"]

Operator = nn.Module | Callable[[torch.Tensor], torch.Tensor] | None


def _to_hwc(image: np.ndarray, channel_axis: int | None, name: str = "image") -> tuple[np.ndarray, bool]:
    """``(H, W, C)`` float32 in [0, 1], and whether the input was 2-D."""
    arr = np.asarray(image)
    if arr.dtype == bool or arr.dtype.kind not in "uif":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    arr = img_as_float32(arr)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.ndim == 2:
        return arr[..., None], True
    if arr.ndim != 3 or channel_axis is None:
        raise ValueError(f"{name} must be (H, W), or 3-D with channel_axis set; got shape {arr.shape}")
    arr = np.moveaxis(arr, channel_axis, -1)
    if arr.shape[-1] > 4:
        raise ValueError(f"{name} has {arr.shape[-1]} channels along axis {channel_axis}: is channel_axis right?")
    return np.clip(arr, 0.0, 1.0), False


def _from_hwc(pixels: np.ndarray, was_2d: bool, channel_axis: int | None) -> np.ndarray:
    if was_2d:
        return pixels[..., 0]
    return np.moveaxis(pixels, -1, channel_axis if channel_axis is not None else -1)


def _preset(preset: str | Preset) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def restore(
    measurement: np.ndarray,
    operator: Operator,
    *,
    image_shape: tuple[int, int] | None = None,
    preset: str | Preset = "denoise",
    iterations: int | None = None,
    seed: int | None = None,
    device: str = "auto",
    channel_axis: int | None = -1,
    ground_truth: np.ndarray | None = None,
    guide: np.ndarray | None = None,
    callbacks: Sequence[Callable[[IterationState], Any]] = (),
    stop: str | None = None,
    sigma: float | None = None,
    precision: str = "auto",
    progress: bool = False,
    return_result: bool = False,
) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Reconstruct ``x`` from ``y = A(x)`` for any differentiable operator ``A``.

    Parameters
    ----------
    measurement : the corrupted image ``y``.
    operator : ``A``, an ``nn.Module`` or callable on ``(1, C, H, W)``
        tensors (``None`` means identity).
    image_shape : ``(H, W)`` of ``x`` when it differs from ``y``'s.
    preset : recipe name (see ``deepprior presets``) or a :class:`Preset`.
    iterations : override the preset's number of steps.
    seed : random seed; the same seed gives the same output on the CPU.
    device : ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``...
    ground_truth : the clean image, to record PSNR along the way (never used
        by the fit).
    guide : a guidance image used as network input (flash / no-flash).
    stop : ``"auto"`` decides from the run itself when to stop (the
        preset's iteration count is then a cap; the default unless
        ``iterations`` is given); ``"fixed"`` runs the iteration budget (the
        default with ``iterations``); ``"oracle"`` keeps the output closest
        to ``ground_truth`` (benchmarks only).
    sigma : noise standard deviation ([0, 1] scale), for SURE-loss recipes.
    precision : ``"auto"`` (bfloat16 where the device computes it natively,
        about 2x faster), ``"bf16"`` or ``"fp32"`` (the original's arithmetic).
    return_result : also return the :class:`FitResult` (history, timings).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.full((32, 32), 0.5)
    >>> x = restore(y, None, preset="denoise", iterations=2, seed=0)
    >>> x.shape, x.dtype
    ((32, 32), dtype('float32'))
    """
    y, was_2d = _to_hwc(measurement, channel_axis, "measurement")
    size = image_shape or y.shape[:2]
    gt = None
    if ground_truth is not None:
        gt_hwc, _ = _to_hwc(ground_truth, channel_axis, "ground_truth")
        if gt_hwc.shape[:2] != tuple(size):
            raise ValueError(f"ground_truth is {gt_hwc.shape[:2]} but the image to restore is {tuple(size)}")
        gt = to_tensor(gt_hwc)
    guide_t = to_tensor(_to_hwc(guide, channel_axis, "guide")[0]) if guide is not None else None
    result, _, _ = run(
        to_tensor(y),
        operator,
        _preset(preset),
        image_size=(int(size[0]), int(size[1])),
        channels=y.shape[-1],
        iterations=iterations,
        seed=seed,
        device=device,
        ground_truth=gt,
        guide=guide_t,
        callbacks=callbacks,
        stop=stop,
        sigma=sigma,
        progress=progress,
        precision=precision,
    )
    out = _from_hwc(from_tensor(result.output.cpu()), was_2d, channel_axis)
    return (out, result) if return_result else out


def denoise(
    image: np.ndarray, *, sigma: float | None = None, preset: str | Preset | None = None, **options: Any
) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Remove noise with the Deep Image Prior.

    ``sigma`` is the noise standard deviation on the image's [0, 1] scale, as
    in ``skimage.restoration`` (25 of 255 is ``25 / 255``); when it is not
    given it is estimated (:func:`deepprior.noise.estimate_sigma`). It tells
    automatic stopping when the fit has reached the noise, and selects the
    recipe: ``denoise-50`` from sigma 40/255 on, ``fast`` below. Other
    keyword options are those of :func:`restore`.

    >>> import numpy as np
    >>> denoise(np.zeros((32, 32, 3)), iterations=1, seed=0).shape
    (32, 32, 3)
    """
    if sigma is not None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if sigma > 1:
            raise ValueError(f"sigma is on the image's [0, 1] scale (25 of 255 is {25 / 255:.4f}), got {sigma}")
    if sigma is None:  # the recipe, automatic stopping and the SURE loss all use it
        from deepprior.noise import estimate_sigma

        sigma = estimate_sigma(_to_hwc(image, options.get("channel_axis", -1))[0])
    if preset is None:
        preset = default_denoise_preset(sigma * 255)
    return restore(image, None, preset=preset, sigma=sigma, **options)


def dejpeg(image: np.ndarray, *, preset: str | Preset = "dejpeg", **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Remove JPEG blocking and ringing (no clean reference needed)."""
    return restore(image, None, preset=preset, **options)


def super_resolve(
    image: np.ndarray,
    scale: int,
    *,
    kernel: str = "lanczos2",
    preset: str | Preset | None = None,
    channel_axis: int | None = -1,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Upscale ``image`` by the integer ``scale``; the result is ``scale`` times larger.

    The forward model is downsampling with ``kernel`` (the paper's
    Lanczos-2 by default). The preset defaults to ``superres-x8`` for scales
    of 8 and more, ``superres`` otherwise.
    """
    if int(scale) != scale or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale}")
    scale = int(scale)
    if preset is None:
        preset = "superres-x8" if scale >= 8 else "superres"
    shape = np.asarray(image).shape
    h_axis = 0
    if np.asarray(image).ndim == 3 and channel_axis is not None and channel_axis % 3 == 0:
        h_axis = 1
    size = (shape[h_axis] * scale, shape[h_axis + 1] * scale)
    return restore(image, Downsample(scale, kernel), image_shape=size, preset=preset, channel_axis=channel_axis, **options)


def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    preset: str | Preset = "inpaint-text",
    channel_axis: int | None = -1,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Fill in the pixels where ``mask`` is 0 (or False).

    ``mask`` marks the **known** pixels (1 / True = known), like the white
    areas of the paper's mask images; note this is the opposite of
    ``skimage.restoration.inpaint_biharmonic``, whose mask marks the missing
    ones. It is ``(H, W)``, or ``(H, W, C)`` for a per-channel mask.
    """
    m = np.asarray(mask)
    img = np.asarray(image)
    hw = img.shape[:2] if img.ndim == 2 or channel_axis in (-1, 2, None) else img.shape[1:]
    if m.shape[:2] != tuple(hw):
        raise ValueError(f"mask is {m.shape[0]}x{m.shape[1]} but the image is {hw[0]}x{hw[1]}")
    return restore(image, Mask(m.astype(np.float32)), preset=preset, channel_axis=channel_axis, **options)


def deblur(
    image: np.ndarray, kernel: np.ndarray | float, *, sigma: float | None = None, preset: str | Preset = "deblur",
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Remove a known blur: ``kernel`` is a 2-D array, or a Gaussian sigma in pixels.

    ``sigma`` is the blurred image's noise level ([0, 1] scale), estimated
    when not given; automatic stopping ends the fit once it reaches it.
    """
    op = Blur.gaussian(float(kernel)) if np.isscalar(kernel) else Blur(np.asarray(kernel, dtype=np.float32))
    if sigma is None:
        from deepprior.noise import estimate_sigma

        sigma = estimate_sigma(_to_hwc(image, options.get("channel_axis", -1))[0])
    return restore(image, op, preset=preset, sigma=sigma, **options)


def flash_no_flash(
    flash: np.ndarray, no_flash: np.ndarray, *, preset: str | Preset = "flash", **options: Any
) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Combine a flash / no-flash pair: the flash photo drives the network, the
    no-flash photo is the target, and early stopping keeps the flash photo's
    detail with the no-flash lighting."""
    f, n = np.asarray(flash), np.asarray(no_flash)
    if f.shape != n.shape:
        raise ValueError(f"flash image is {f.shape} but the no-flash image is {n.shape}")
    return restore(no_flash, None, preset=preset, guide=flash, **options)
