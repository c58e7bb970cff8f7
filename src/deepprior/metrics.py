"""Image quality metrics used to report restoration results.

``psnr`` and ``ssim`` compare float images in [0, 1].  ``psnr_sr`` follows
the super-resolution convention of the Deep Image Prior paper tables (and
the SR literature it compares with): PSNR of the BT.601 luma channel on the
0-255 scale, with a ``scale``-pixel border ignored.
"""

from __future__ import annotations

import numpy as np

# scikit-image's metrics are imported where they are used: they pull in scipy.stats, over a second of a
# command's start-up, which a run without a ground truth never needs.

__all__ = ["psnr", "psnr_sr", "rgb_to_luma", "ssim"]

_BT601_LUMA = np.array([65.481, 128.553, 24.966])


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ValueError(f"images differ in shape: {reference.shape} vs {estimate.shape}")
    return reference, estimate


def psnr(reference: np.ndarray, estimate: np.ndarray, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)``.

    Arrays are (H, W) or (H, W, C), same shape.  Identical images give ``inf``.

    Examples
    --------
    >>> a = np.zeros((4, 4))
    >>> round(psnr(a, a + 0.1), 6)
    20.0
    """
    from skimage.metrics import peak_signal_noise_ratio

    reference, estimate = _pair(reference, estimate)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(reference, estimate, data_range=data_range))


def ssim(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Structural similarity (data range 1) of (H, W) or (H, W, C) images in [0, 1].

    Colour images are compared per channel and averaged; a single-channel
    axis is dropped first.  Both sides must be at least 7 pixels (the
    default window of scikit-image).

    Examples
    --------
    >>> a = np.linspace(0, 1, 64).reshape(8, 8)
    >>> ssim(a, a)
    1.0
    """
    from skimage.metrics import structural_similarity

    reference, estimate = _pair(reference, estimate)
    if reference.ndim == 3 and reference.shape[2] == 1:
        reference, estimate = reference[:, :, 0], estimate[:, :, 0]
    channel_axis = -1 if reference.ndim == 3 else None
    return float(structural_similarity(reference, estimate, data_range=1.0, channel_axis=channel_axis))


def rgb_to_luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma Y on the 0-255 scale (range 16-235), as MATLAB's ``rgb2ycbcr``.

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1]; the
    result is float64 of shape (H, W) and is not rounded.  A grey image,
    (H, W) or (H, W, 1), is taken as already being luma and returned as
    ``255 * image`` (no 16-235 compression), so grey results stay comparable
    with the usual grey benchmarks.

    Examples
    --------
    >>> rgb_to_luma(np.ones((1, 1, 3))).item()
    235.0
    >>> rgb_to_luma(np.full((1, 1), 0.5)).item()
    127.5
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return 255.0 * image
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {image.shape}")
    return 16.0 + image @ _BT601_LUMA


def psnr_sr(reference: np.ndarray, estimate: np.ndarray, scale: int) -> float:
    """Super-resolution PSNR: luma only (0-255, data range 255), ``scale``-pixel border cropped.

    The border is excluded because upsampling cannot recover it reliably;
    this is the evaluation behind the DIP paper's super-resolution tables.

    Examples
    --------
    >>> a = np.zeros((8, 8, 3))
    >>> b = a.copy(); b[0, 0] = 1.0     # error only inside the 2-pixel border
    >>> psnr_sr(a, b, 2)
    inf
    """
    reference, estimate = _pair(reference, estimate)
    scale = int(scale)
    if scale < 0:
        raise ValueError(f"scale must be >= 0, not {scale}")
    y_ref, y_est = rgb_to_luma(reference), rgb_to_luma(estimate)
    if scale > 0:
        y_ref, y_est = y_ref[scale:-scale, scale:-scale], y_est[scale:-scale, scale:-scale]
    if y_ref.size == 0:
        raise ValueError(f"a {scale}-pixel border leaves nothing of a {reference.shape[:2]} image")
    return psnr(y_ref, y_est, data_range=255.0)
