"""Estimate the level of additive white Gaussian noise from the noisy image alone.

Two steps, each fixing a known failure of the usual wavelet estimate
(``skimage.restoration.estimate_sigma``), which reads texture as noise
(+25 % on Set9's baboon at sigma 15) and misses the noise that clipping to
[0, 1] removes (-13 % at sigma 50):

1. Weak-texture patches, PCA (after Liu, Tanaka and Okutomi, 2013, and
   Chen, Zhu and Heng, 2015): the noise variance is the mean of the tail of
   the patch covariance's eigenvalues where mean and median agree; patches
   whose gradient energy is too high for pure noise at the current estimate
   are left out, and the estimate is repeated.
2. Clipping correction: the sigma of Gaussian noise which, clipped to [0, 1]
   around the local image means, leaves the standard deviation measured.

On Set9 with noise clipped to [0, 1] it lands within 4 % of the true sigma
for sigma in {15, 25, 50} (``bench/noise_estimation.py``).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter
from scipy.special import ndtr  # the standard normal CDF; scipy.stats would add a second to start-up

__all__ = ["estimate_sigma"]


def _tail_variance(patches: np.ndarray) -> float:
    """Mean of the smallest covariance eigenvalues, from where their mean and median agree."""
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(patches.T)))[::-1]
    tau = float(eigenvalues.mean())
    for i in range(len(eigenvalues)):
        tail = eigenvalues[i:]
        tau = float(tail.mean())
        if (tail > tau).sum() >= (tail < tau).sum():
            break
    return max(tau, 0.0)


def _weak_texture_sigma(plane: np.ndarray, patch: int, rng: np.random.Generator, max_patches: int) -> float:
    windows = sliding_window_view(plane, (patch, patch))
    flat = windows.reshape(-1, patch * patch)
    energy = (np.diff(windows, axis=3) ** 2).sum(axis=(2, 3)).ravel() + (np.diff(windows, axis=2) ** 2).sum(axis=(2, 3)).ravel()
    if len(flat) > max_patches:
        chosen = rng.choice(len(flat), max_patches, replace=False)
        flat, energy = flat[chosen], energy[chosen]
    terms = 2 * patch * (patch - 1)  # differences per patch; each has variance 2 sigma^2 under pure noise
    slack = 1 + 3.5 * np.sqrt(2 / terms)  # well above the typical energy of a pure-noise patch
    variance = _tail_variance(flat)
    for _ in range(5):
        keep = energy < 2 * terms * variance * slack
        if keep.sum() < 2 * patch * patch:
            break
        updated = _tail_variance(flat[keep])
        if abs(updated - variance) <= 1e-4 * variance:
            variance = updated
            break
        variance = updated
    return float(np.sqrt(variance))


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def _clipped_std(mean: np.ndarray, sigma: float) -> np.ndarray:
    """Standard deviation of clip(mean + sigma * z, 0, 1), z standard normal."""
    a, b = -mean / sigma, (1 - mean) / sigma
    cdf_a, cdf_b, pdf_a, pdf_b = ndtr(a), ndtr(b), _normal_pdf(a), _normal_pdf(b)
    inside = cdf_b - cdf_a
    first = (1 - cdf_b) + mean * inside + sigma * (pdf_a - pdf_b)
    second = (1 - cdf_b) + mean**2 * inside + 2 * mean * sigma * (pdf_a - pdf_b) + sigma**2 * (inside + a * pdf_a - b * pdf_b)
    return np.sqrt(np.maximum(second - first**2, 0.0))


def _unclip(image: np.ndarray, measured: float) -> float:
    means = np.stack([uniform_filter(image[..., c], 5) for c in range(image.shape[2])], axis=-1).ravel()[::7]
    low, high = measured, 3 * measured
    for _ in range(40):  # bisection: the clipped std grows with sigma
        mid = 0.5 * (low + high)
        if np.sqrt(np.mean(_clipped_std(means, mid) ** 2)) < measured:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def estimate_sigma(image: np.ndarray, *, patch: int = 7, clipped: bool = True, seed: int = 0) -> float:
    """Standard deviation of the Gaussian noise in ``image`` (``(H, W)`` or
    ``(H, W, C)``, float in [0, 1]), on the same [0, 1] scale.

    ``clipped`` says the noisy values were clipped to [0, 1] (as in saved
    images), so the noise removed by clipping is accounted for.

    >>> rng = np.random.default_rng(0)
    >>> smooth = np.tile(np.linspace(0.2, 0.8, 96), (96, 1))
    >>> noisy = np.clip(smooth + rng.normal(0, 0.1, smooth.shape), 0, 1)
    >>> round(estimate_sigma(noisy), 2)
    0.1
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or min(img.shape[:2]) < 2 * patch:
        raise ValueError(f"image of shape {np.shape(image)} is too small to estimate noise (needs {2 * patch} pixels a side)")
    rng = np.random.default_rng(seed)
    per_channel = [_weak_texture_sigma(img[..., c], patch, rng, 60_000) for c in range(img.shape[2])]
    sigma = float(np.mean(per_channel))
    if clipped and sigma > 0:
        sigma = _unclip(img, sigma)
    return sigma
