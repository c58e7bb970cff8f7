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

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter

__all__ = ["CAMERA_LEVEL", "CAMERA_WHITE_BELOW", "NOISE_CHOICES", "CameraNoise", "GaussianNoise", "ImpulseNoise",
           "NoiseModel", "Noiseless", "PoissonNoise", "clipped_noise_variance", "estimate_sigma"]

#: What a user can say of the noise of a noisy photo: ``auto`` (the default) decides from the image,
#: ``gaussian`` is additive white Gaussian noise of a given or estimated level, ``poisson`` photon-count noise of
#: a given peak count, ``poisson-gaussian`` that plus Gaussian read noise of a given level, ``impulse``
#: salt-and-pepper noise (values replaced by black or white), ``camera`` the noise of a camera's JPEG (correlated,
#: mostly quantised away inside flat blocks: :class:`CameraNoise`).
NOISE_CHOICES = ("auto", "gaussian", "camera", "poisson", "poisson-gaussian", "impulse")

#: The white-noise level (on the [0, 1] scale) below which ``auto`` takes a JPEG's noise for a camera's
#: (:class:`CameraNoise`). Measured by ``bench/studies/camera_detection.py --data ../shared/data``: on 25 PolyU
#: tuning crops (256x256, every 3rd pair ``bench/real_noise.py`` does not report) :func:`estimate_sigma` reads 0 to
#: 0.63 of 255 on the noisy shots, where the residual from the mean image has a standard deviation of 3 to 9. On
#: 256x256 crops of six CBSD68 tuning photos with Gaussian noise saved as JPEG (4:2:0), sigma 5 and 10 read above 1
#: at quality 90 and 95 in 23 of 24 cases, so noise a JPEG kept white is still measured as such; at quality 75,
#: and sigma 3 at quality 90, the JPEG quantises the noise away as a camera's does, and it reads below 1.
CAMERA_WHITE_BELOW = 1.0 / 255

#: The white-equivalent level (on the [0, 1] scale) at which the denoising stage filters camera noise, which no
#: estimate from the image can give (see :class:`CameraNoise`). Chosen on PolyU tuning pairs (every 8th pair by
#: name that ``bench/real_noise.py`` does not report; ``bench/studies/real_noise_recipe.py --data ../shared/data
#: --step 8``, then ``--summary``): after the ``fast-camera`` fit, levels 8, 12, 16, 20 and 25 of 255 give a mean of
#: 40.19, 40.35, 40.39, 40.35 and 40.23 dB on 6 pairs (noisy 37.70); see ``CAMERA_STEPS`` in
#: :mod:`deepprior.presets`. What it costs a clean JPEG taken for a camera's: the same stage on the 10 clean mean
#: images of those pairs, each its own pilot, leaves them at 46.65 dB against themselves on average, 39.50 at
#: worst (fine texture smoothed; ``real_noise_recipe.py --data ../shared/data --step 8 --harm``).
CAMERA_LEVEL = 16 / 255


@dataclass(frozen=True)
class NoiseModel:
    """The noise ``N`` of a measurement ``y = N(A(x))``: what the stopping rule, the SURE loss and the
    Wiener stage ask about it. This base class is "unknown or negligible": no level to stop at."""

    #: Whether automatic stopping is the recipe's fixed length (no level the residual could be compared with).
    fixed_length: ClassVar[bool] = False

    @property
    def sigma(self) -> float | None:
        """Standard deviation of additive Gaussian noise on the [0, 1] scale, or ``None``."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the record says of the noise."""
        return {"model": "none"}

    def summary(self) -> str:
        """What the noise was taken to be, in one line (the command line prints it when the image decided)."""
        return "noise: none"


@dataclass(frozen=True)
class Noiseless(NoiseModel):
    """A clean measurement (super-resolution, inpainting, JPEG): automatic stopping waits for the output to settle.

    >>> Noiseless().sigma is None
    True
    """


@dataclass(frozen=True)
class GaussianNoise(NoiseModel):
    """``y = clip(A(x) + n, 0, 1)``, ``n ~ N(0, sigma^2)`` per pixel; ``sigma`` on the image's [0, 1] scale,
    ``source`` says whether it was ``"given"`` or ``"estimated"`` from the image.

    >>> GaussianNoise(25 / 255).describe()
    {'model': 'gaussian', 'sigma': 0.098039, 'sigma_255': 25.0, 'source': 'given'}
    """

    level: float = 0.0
    source: str = "given"

    def __post_init__(self) -> None:
        if not 0.0 <= self.level <= 1.0:
            raise ValueError(f"noise sigma is on the image's [0, 1] scale (25 of 255 is {25 / 255:.4f}), "
                             f"got {self.level}")

    @property
    def sigma(self) -> float:
        return self.level

    @classmethod
    def estimate(cls, pixels: np.ndarray) -> GaussianNoise:
        """The level read from the noisy image itself (:func:`estimate_sigma`)."""
        return cls(estimate_sigma(pixels), "estimated")

    def describe(self) -> dict[str, Any]:
        return {"model": "gaussian", "sigma": round(self.level, 6), "sigma_255": round(self.level * 255, 3),
                "source": self.source}

    def summary(self) -> str:
        """
        >>> GaussianNoise(12.5 / 255, "estimated").summary()
        'noise: Gaussian, sigma 12.5 of 255 (estimated)'
        """
        return f"noise: Gaussian, sigma {self.level * 255:.1f} of 255 ({self.source})"


@dataclass(frozen=True)
class CameraNoise(NoiseModel):
    """The noise of a photo a camera saved as JPEG. It is not white: demosaicking and in-camera processing
    correlate it over neighbouring pixels, and the JPEG then quantises away what is left inside flat 8x8 blocks,
    keeping it as block-to-block (low-frequency) variation and in texture. A white-noise estimator finds
    almost nothing (:data:`CAMERA_WHITE_BELOW`) where the shot differs from the scene by 3 to 9 of 255, and
    a discrepancy stop has no level to aim at. So the fit runs a fixed length (:attr:`fixed_length`; the
    ``fast-camera`` recipe) and the denoising stage filters at ``level``, a white-equivalent level chosen on
    real camera photos (:data:`CAMERA_LEVEL`). ``white`` is what the white-noise estimator read, ``jpeg_quality``
    the quality the file's quantisation tables match (``None``: not a JPEG, the model named by the user).

    >>> CameraNoise(white=0.3 / 255, jpeg_quality=75).summary()
    'noise: camera JPEG, quality 75 (detected: white-noise estimate 0.3 of 255, the rest quantised into blocks); filtered as 16.0 of 255'
    """

    level: float = CAMERA_LEVEL
    white: float | None = None
    jpeg_quality: int | None = None
    source: str = "detected"
    #: The fit runs its recipe's fixed length: the residual has no noise level to be compared with.
    fixed_length: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 < self.level <= 1.0:
            raise ValueError(f"camera noise is filtered at a level on the image's [0, 1] scale, got {self.level}")

    @property
    def sigma(self) -> float:
        """The white-equivalent level the denoising stage filters at."""
        return self.level

    def describe(self) -> dict[str, Any]:
        white = None if self.white is None else round(self.white * 255, 3)
        return {"model": "camera-jpeg", "level_255": round(self.level * 255, 3), "white_estimate_255": white,
                "jpeg_quality": self.jpeg_quality, "source": self.source}

    def summary(self) -> str:
        """
        >>> CameraNoise(source="given").summary()
        'noise: camera (given); filtered as 16.0 of 255'
        """
        what = "camera JPEG" if self.jpeg_quality is not None else "camera"
        quality = f", quality {self.jpeg_quality}" if self.jpeg_quality is not None else ""
        why = (f"{self.source}: white-noise estimate {self.white * 255:.1f} of 255, the rest quantised into blocks"
               if self.white is not None and self.source == "detected" else self.source)
        return f"noise: {what}{quality} ({why}); filtered as {self.level * 255:.1f} of 255"


@dataclass(frozen=True)
class ImpulseNoise(NoiseModel):
    """Salt-and-pepper noise: a ``fraction`` of the values replaced by black or white, the rest exact. The
    replaced values are restored as missing pixels (a per-channel mask, :mod:`deepprior.impulse`), so the fit
    has no noise level to stop at. ``source`` says whether the user named the model (``"given"``) or ``auto``
    found it (``"detected"``).

    >>> ImpulseNoise(0.2, "detected").describe()
    {'model': 'impulse', 'kind': 'salt-and-pepper', 'fraction': 0.2, 'source': 'detected'}
    """

    fraction: float = 0.0
    source: str = "given"

    def describe(self) -> dict[str, Any]:
        return {"model": "impulse", "kind": "salt-and-pepper", "fraction": round(self.fraction, 4),
                "source": self.source}

    def summary(self) -> str:
        """
        >>> ImpulseNoise(0.2, "detected").summary()
        'noise: salt-and-pepper, 20.0 % of the values black or white (detected), restored as missing pixels'
        """
        return (f"noise: salt-and-pepper, {self.fraction * 100:.1f} % of the values black or white ({self.source}), "
                "restored as missing pixels")


@dataclass(frozen=True)
class PoissonNoise(NoiseModel):
    """Photon-count noise: ``y = clip((Poisson(peak * x) + N(0, read^2)) / peak, 0, 1)``, ``peak`` the count of a
    white pixel, ``read`` the Gaussian read noise in counts (0: pure Poisson noise). Its variance follows the
    brightness, so the fit works on the variance-stabilised image (:class:`deepprior.stabilise.Anscombe`), where
    the noise is Gaussian of level :attr:`sigma`, and the result goes back by the exact unbiased inverse.

    >>> noise = PoissonNoise(30.0)
    >>> noise.summary()
    'noise: Poisson, peak 30 counts (given); stabilised level 26.0 of 255'
    """

    peak: float = 1.0
    read: float = 0.0
    source: str = "given"
    #: The stabilised image's own noise level (:meth:`Anscombe.residual_sigma`), once measured on it.
    level: float | None = None

    def measured_on(self, noisy: np.ndarray) -> PoissonNoise:
        """This model with the stabilised level that ``noisy`` really has (few counts and white clipping lower
        it below the transform's nominal level)."""
        return replace(self, level=self.stabiliser.residual_sigma(noisy))

    @property
    def stabiliser(self):  # -> deepprior.stabilise.Anscombe (imported late: scipy.stats is slow to load)
        """The variance-stabilising transform the fit works through."""
        from deepprior.stabilise import Anscombe

        return Anscombe(self.peak, self.read)

    @property
    def sigma(self) -> float:
        """The Gaussian noise level of the stabilised image (what the stopping rule and the Wiener stage see):
        the image's own when measured, else the transform's nominal one."""
        return self.level if self.level is not None else self.stabiliser.sigma

    def describe(self) -> dict[str, Any]:
        return {"model": "poisson-gaussian" if self.read else "poisson", "peak": self.peak,
                "read_255": round(self.read / self.peak * 255, 3), "stabilised_sigma_255": round(self.sigma * 255, 3),
                "nominal_sigma_255": round(self.stabiliser.sigma * 255, 3), "source": self.source}

    def summary(self) -> str:
        read = f", Gaussian read noise {self.read / self.peak * 255:.1f} of 255" if self.read else ""
        return (f"noise: Poisson, peak {self.peak:g} counts{read} ({self.source}); stabilised level "
                f"{self.sigma * 255:.1f} of 255")


def clipped_noise_variance(image: torch.Tensor, sigma: float, low: float = 0.0, high: float = 1.0) -> float:
    """Mean variance of ``clip(image + sigma * Z, low, high)`` over its pixels, ``Z`` standard normal.

    Noise added to an image and then clipped to the valid range varies less than ``sigma**2`` where the
    image is near black or white. The noise estimate undoes that loss, and the discrepancy stopping rule
    aims at this residual rather than ``sigma**2``.

    >>> round(clipped_noise_variance(torch.full((4,), 0.5), 0.1) / 0.01, 4)  # far from the ends
    1.0
    >>> round(clipped_noise_variance(torch.zeros(4), 0.1) / 0.01, 3)  # black: half the noise is cut off
    0.341
    """
    x = image.detach().double().clamp(low, high)
    a, b = (low - x) / sigma, (high - x) / sigma

    def pdf(t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)

    cdf_a, tail_b = torch.special.ndtr(a), torch.special.ndtr(-b)
    first = pdf(a) - pdf(b) + a * cdf_a + b * tail_b  # E[(Y - x) / sigma]
    second = (1 - tail_b - cdf_a) - (b * pdf(b) - a * pdf(a)) + a * a * cdf_a + b * b * tail_b
    return float((second - first * first).mean()) * sigma * sigma


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


def _unclip(image: np.ndarray, measured: float) -> float:
    means = np.stack([uniform_filter(image[..., c], 5) for c in range(image.shape[2])], axis=-1).ravel()[::7]
    means_t = torch.from_numpy(means)
    low, high = measured, 3 * measured
    for _ in range(40):  # bisection: the clipped std grows with sigma
        mid = 0.5 * (low + high)
        if clipped_noise_variance(means_t, mid) < measured**2:
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
        height, width = (*np.shape(image), 1, 1)[:2]
        raise ValueError(f"the image is only {width}x{height} pixels, too small to estimate its noise level (that "
                         f"needs {2 * patch}x{2 * patch}); give the noise level instead")
    rng = np.random.default_rng(seed)
    per_channel = [_weak_texture_sigma(img[..., c], patch, rng, 60_000) for c in range(img.shape[2])]
    sigma = float(np.mean(per_channel))
    if clipped and sigma > 0:
        sigma = _unclip(img, sigma)
    return sigma
