"""Resampling and blur kernels as NumPy arrays (2-D, normalised to sum 1).

``lanczos2`` is the kernel of the Deep Image Prior super-resolution
experiments: Lanczos window with support a = 2, ``4 * factor`` taps, sampled
at half-pixel phase (the centre falls between two taps).
"""
from __future__ import annotations

import numpy as np

__all__ = ["RESAMPLING_KERNELS", "gaussian_kernel", "resampling_kernel"]

RESAMPLING_KERNELS = ("lanczos2", "lanczos3", "box", "gauss", "bicubic")


def _lanczos(x: np.ndarray, support: int) -> np.ndarray:
    """Lanczos window sinc(x) sinc(x / a) on |x| < a, zero elsewhere."""
    out = np.sinc(x) * np.sinc(x / support)
    return np.where(np.abs(x) < support, out, 0.0)


def _bicubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5, as MATLAB's imresize)."""
    x = np.abs(x)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _half_phase_taps(factor: int, radius: float) -> np.ndarray:
    """Tap positions, in low-resolution pixel units, of a half-phase kernel
    covering ``radius`` low-resolution pixels on each side of its centre."""
    n = int(round(2 * radius * factor))
    return (np.arange(n) - (n - 1) / 2) / factor


def resampling_kernel(kind: str, factor: int) -> np.ndarray:
    """The 2-D kernel that anti-aliases before keeping every ``factor``-th pixel.

    >>> k = resampling_kernel("lanczos2", 4)
    >>> k.shape, round(float(k.sum()), 6)
    ((16, 16), 1.0)
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if kind in ("lanczos2", "lanczos3"):
        support = int(kind[-1])
        taps = _half_phase_taps(factor, support)
        k1 = _lanczos(taps, support)
    elif kind == "bicubic":
        k1 = _bicubic(_half_phase_taps(factor, 2))
    elif kind == "box":
        k1 = np.ones(factor)
    elif kind == "gauss":
        # Gaussian with standard deviation of half a low-resolution pixel.
        taps = _half_phase_taps(factor, 2)
        k1 = np.exp(-(taps**2) / (2 * 0.5**2))
    else:
        raise ValueError(f"unknown kernel {kind!r} (use {', '.join(RESAMPLING_KERNELS)})")
    k2 = np.outer(k1, k1)
    return k2 / k2.sum()


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """An isotropic Gaussian blur kernel of standard deviation ``sigma`` pixels,
    ``2 * radius + 1`` taps wide (radius defaults to ``ceil(3 * sigma)``).

    >>> gaussian_kernel(1.0).shape
    (7, 7)
    """
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    r = int(np.ceil(3 * sigma)) if radius is None else int(radius)
    x = np.arange(-r, r + 1)
    k1 = np.exp(-(x**2) / (2 * sigma**2))
    k2 = np.outer(k1, k1)
    return k2 / k2.sum()
