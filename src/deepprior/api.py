"""The NumPy API, in the style of ``skimage.restoration``.

Arrays in, arrays out: float images in [0, 1] (integer images are rescaled
as scikit-image does), ``(H, W)`` grey or ``(H, W, C)`` with ``channel_axis``
saying where the channels are. Each function returns an array of the clean
image's shape, or ``(array, FitResult)`` with ``return_result=True``.

Every function builds its job from the task registry (:mod:`deepprior.tasks`)
and runs the one pipeline (:func:`deepprior.pipeline.restore`), as the command
line does; :func:`run_task` reaches any registered task by name. Keyword
options beyond the task's own are :class:`~deepprior.pipeline.Settings`
fields (``iterations``, ``seed``, ``device``, ``stop``, ``precision``,
``refine``, ``tile``, ``max_memory``, ``callbacks``, ``progress``...).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from skimage.util import img_as_float32
from torch import nn

from deepprior.fitting import FitResult, StoppingRule
from deepprior.fitting.result import IterationState
from deepprior.jobs import Job, TaskOptions
from deepprior.measurement import Measurement
from deepprior.noise import GaussianNoise, Noiseless
from deepprior.operators import as_operator
from deepprior.pipeline import Settings
from deepprior.pipeline import restore as run_pipeline
from deepprior.presets import Preset

__all__ = [
    "FUNCTIONS",
    "deblur",
    "dejpeg",
    "denoise",
    "flash_no_flash",
    "inpaint",
    "restore",
    "run_task",
    "super_resolve",
]

Operator = nn.Module | Callable[[torch.Tensor], torch.Tensor] | None


def _to_hwc(image: np.ndarray, channel_axis: int | None, name: str = "image") -> tuple[np.ndarray, bool]:
    """``(H, W, C)`` float32 in [0, 1], and whether the input was 2-D."""
    arr = np.asarray(image)
    if arr.dtype == bool:  # a mask: True = 1
        arr = arr.astype(np.float32)
    if arr.dtype.kind not in "uif":
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


def _settings(options: dict[str, Any]) -> Settings:
    if "callbacks" in options:
        options["callbacks"] = tuple(options["callbacks"])
    try:
        return Settings(**options)
    except TypeError:
        known = ", ".join(Settings.__dataclass_fields__)
        raise TypeError(f"unknown options {', '.join(sorted(options))}: the settings are {known}") from None


def _finish(out: Any, was_2d: bool, channel_axis: int | None, return_result: bool) -> Any:
    image = _from_hwc(out.image, was_2d, channel_axis)
    return (image, out.result) if return_result else image


def run_task(task: str, *images: np.ndarray, channel_axis: int | None = -1, sigma: float | None = None,
             scale: int | None = None, kernel: Any = None, noise: str = "auto", peak: float | None = None,
             ground_truth: np.ndarray | None = None, return_result: bool = False, **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Run the registered task ``task`` on ``images`` (one array per input of the task, in its order:
    the image, then e.g. the mask), with the task's options and any :class:`Settings` field.

    >>> import numpy as np
    >>> run_task("denoise", np.full((32, 32), 0.5), sigma=0.1, iterations=2, seed=0).shape
    (32, 32)
    """
    from deepprior.tasks import get_task, job_from_arrays

    spec = get_task(task)
    if len(images) != len(spec.inputs):
        raise ValueError(f"{task} takes {len(spec.inputs)} image(s) ({', '.join(s.role for s in spec.inputs)}), "
                         f"got {len(images)}")
    arrays, was_2d = {}, False
    for slot, array in zip(spec.inputs, images):
        arrays[slot.role], flat = _to_hwc(array, channel_axis, slot.role)
        was_2d = was_2d or (flat and slot is spec.inputs[0])
    gt = _to_hwc(ground_truth, channel_axis, "ground_truth")[0] if ground_truth is not None else None
    job = job_from_arrays(task, arrays, TaskOptions(sigma=sigma, scale=scale, kernel=kernel, noise=noise,
                                                          peak=peak), gt)
    return _finish(run_pipeline(job, _settings(options)), was_2d, channel_axis, return_result)


def restore(
    measurement: np.ndarray,
    operator: Operator,
    *,
    image_shape: tuple[int, int] | None = None,
    preset: str | Preset = "denoise",
    channel_axis: int | None = -1,
    sigma: float | None = None,
    ground_truth: np.ndarray | None = None,
    guide: np.ndarray | None = None,
    callbacks: Sequence[Callable[[IterationState], Any]] = (),
    stop: str | StoppingRule | None = None,
    return_result: bool = False,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Reconstruct ``x`` from ``y = A(x)`` for any differentiable operator ``A``.

    Parameters
    ----------
    measurement : the corrupted image ``y``.
    operator : ``A``, an :class:`~deepprior.operators.Operator`, ``nn.Module`` or callable on
        ``(1, C, H, W)`` tensors (``None`` means identity).
    image_shape : ``(H, W)`` of ``x`` when it differs from ``y``'s.
    preset : recipe name (see ``deepprior presets``) or a :class:`Preset`.
    sigma : the noise standard deviation of ``y`` ([0, 1] scale), if it is noisy: automatic stopping then
        ends at the noise level, and SURE-loss recipes need it.
    ground_truth : the clean image, to record PSNR along the way (never used by the fit).
    guide : a guidance image used as network input (flash / no-flash).
    stop : ``"auto"`` decides from the run itself when to stop (the preset's iteration count is then a
        cap; the default unless ``iterations`` is given); ``"fixed"`` runs the iteration budget (the
        default with ``iterations``); ``"oracle"`` keeps the output closest to ``ground_truth``
        (benchmarks only); or a :class:`~deepprior.fitting.StoppingRule`.
    return_result : also return the :class:`FitResult` (history, timings).
    options : :class:`~deepprior.pipeline.Settings` fields: ``iterations``, ``seed``, ``device``,
        ``precision``, ``progress``, ``refine``, ``tile``, ``max_memory``...

    Examples
    --------
    >>> import numpy as np
    >>> y = np.full((32, 32), 0.5)
    >>> x = restore(y, None, preset="denoise", iterations=2, seed=0)
    >>> x.shape, x.dtype
    ((32, 32), dtype('float32'))
    """
    y, was_2d = _to_hwc(measurement, channel_axis, "measurement")
    size = tuple(int(v) for v in (image_shape or y.shape[:2]))
    noise = GaussianNoise(sigma) if sigma is not None else Noiseless()
    job = Job("restore", Measurement(y, as_operator(operator), noise, size))  # type: ignore[arg-type]
    if ground_truth is not None:
        gt, _ = _to_hwc(ground_truth, channel_axis, "ground_truth")
        if gt.shape[:2] != size:
            raise ValueError(f"ground_truth is {gt.shape[:2]} but the image to restore is {size}")
        job.ground_truth = gt
    if guide is not None:
        job.guide = _to_hwc(guide, channel_axis, "guide")[0]
    settings = _settings({"preset": preset, "callbacks": callbacks, "stop": stop, **options})
    return _finish(run_pipeline(job, settings), was_2d, channel_axis, return_result)


def denoise(image: np.ndarray, *, sigma: float | None = None, **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Remove noise with the Deep Image Prior.

    ``sigma`` is the noise standard deviation on the image's [0, 1] scale, as
    in ``skimage.restoration`` (25 of 255 is ``25 / 255``); when it is not
    given it is estimated (:func:`deepprior.noise.estimate_sigma`). It tells
    automatic stopping when the fit has reached the noise, and selects the
    recipe: ``denoise-50`` from sigma 40/255 on, ``fast`` below. ``noise``
    (a keyword of :func:`run_task`) says what the noise is: ``"auto"`` (the
    default) takes salt-and-pepper noise for what it is where the image
    shows it, and restores its black and white values as missing pixels
    (``"impulse"`` says so; ``"gaussian"`` never does); ``"poisson"``
    with ``peak`` (the photon count of white) restores photon-count noise
    through a variance-stabilising transform, ``"poisson-gaussian"`` takes
    ``sigma`` as its Gaussian part. Other keyword options are those of
    :func:`run_task`.

    >>> import numpy as np
    >>> denoise(np.zeros((32, 32, 3)), iterations=1, seed=0).shape
    (32, 32, 3)
    """
    return run_task("denoise", image, sigma=sigma, **options)


def dejpeg(image: np.ndarray, **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Remove JPEG blocking and ringing (no clean reference needed)."""
    return run_task("dejpeg", image, **options)


def super_resolve(image: np.ndarray, scale: int, *, kernel: str = "lanczos2",
                  **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Upscale ``image`` by the integer ``scale``; the result is ``scale`` times larger.

    The forward model is downsampling with ``kernel`` (the paper's
    Lanczos-2 by default). The preset defaults to ``superres-x8`` for scales
    of 8 and more, ``superres`` otherwise.
    """
    if int(scale) != scale or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale}")
    return run_task("superres", image, scale=int(scale), kernel=kernel, **options)


def inpaint(image: np.ndarray, mask: np.ndarray, *, channel_axis: int | None = -1,
            **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Fill in the pixels where ``mask`` is 0 (or False).

    ``mask`` marks the **known** pixels (1 / True = known), like the white
    areas of the paper's mask images; note this is the opposite of
    ``skimage.restoration.inpaint_biharmonic``, whose mask marks the missing
    ones. It is ``(H, W)``, or has the image's channels for a per-channel mask.
    """
    m = np.asarray(mask)
    if m.dtype == bool:
        m = m.astype(np.float32)
    if m.ndim == 2 and channel_axis is not None:  # with no channel axis a 2-D mask goes with a 2-D image
        m = m[..., None]
        if np.asarray(image).ndim == 3:
            m = np.moveaxis(m, -1, channel_axis)
    return run_task("inpaint", image, m, channel_axis=channel_axis, **options)


def deblur(image: np.ndarray, kernel: np.ndarray | float, *, sigma: float | None = None,
           **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Remove a known blur: ``kernel`` is a 2-D array, or a Gaussian sigma in pixels.

    ``sigma`` is the blurred image's noise level ([0, 1] scale), estimated
    when not given; automatic stopping ends the fit once it reaches it.
    """
    spec = float(kernel) if np.isscalar(kernel) else np.asarray(kernel, dtype=np.float32)
    return run_task("deblur", image, kernel=spec, sigma=sigma, **options)


def flash_no_flash(flash: np.ndarray, no_flash: np.ndarray,
                   **options: Any) -> np.ndarray | tuple[np.ndarray, FitResult]:
    """Combine a flash / no-flash pair: the flash photo drives the network, the
    no-flash photo is the target, and early stopping keeps the flash photo's
    detail with the no-flash lighting."""
    f, n = np.asarray(flash), np.asarray(no_flash)
    if f.shape != n.shape:
        raise ValueError(f"flash image is {f.shape} but the no-flash image is {n.shape}")
    return run_task("flash", flash, no_flash, **options)


#: The NumPy function of each built-in task (checked against the registry by the tests).
FUNCTIONS = {"denoise": denoise, "superres": super_resolve, "inpaint": inpaint, "deblur": deblur, "dejpeg": dejpeg,
             "flash": flash_no_flash}
