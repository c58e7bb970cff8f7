"""Make corrupted test inputs from a clean image, the way the paper's
experiments do: additive Gaussian noise clipped to [0, 1], Lanczos
downscaling with Pillow, random pixel drop, Gaussian blur; and the noise
photographs have beyond the paper: spatially correlated Gaussian noise,
Poisson (photon-count) noise and impulse noise.

All functions take and return ``(H, W, C)`` float arrays in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage

from deepprior.imageio import from_tensor, to_tensor
from deepprior.operators import Blur, bernoulli_mask

__all__ = ["IMPULSE_KINDS", "Degraded", "add_impulse", "add_noise", "add_poisson", "blur", "center_crop",
           "degrade_image", "downscale", "drop_pixels"]

#: the values impulse noise writes: ``"salt-pepper"`` black or white, ``"random"`` uniform in [0, 1]
IMPULSE_KINDS = ("salt-pepper", "random")


def add_noise(image: np.ndarray, sigma: float, *, correlation: float = 0.0, seed: int | None = None) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``sigma`` (on the [0, 1] scale) and clip to [0, 1]. With
    ``correlation`` > 0 the noise is white noise blurred by a Gaussian of that many pixels, then scaled back to
    ``sigma`` per pixel: spatially correlated, as demosaicking and in-camera processing leave it.

    >>> float(add_noise(np.full((4, 4, 1), 0.5), 0.0).max())
    0.5
    >>> noisy = add_noise(np.full((64, 64, 1), 0.5), 0.05, correlation=1.5, seed=0) - 0.5
    >>> round(float(noisy.std()), 2), bool(np.corrcoef(noisy[:, 1:].ravel(), noisy[:, :-1].ravel())[0, 1] > 0.5)
    (0.05, True)
    """
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    if correlation < 0:
        raise ValueError(f"noise correlation must be >= 0 pixels, got {correlation}")
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, image.shape)
    if correlation > 0:
        from scipy.ndimage import gaussian_filter

        noise = gaussian_filter(noise, (correlation, correlation, 0), mode="wrap")
        noise /= noise.std()
    return np.clip(image + sigma * noise, 0.0, 1.0).astype(np.float32)


def add_poisson(image: np.ndarray, peak: float, *, seed: int | None = None) -> np.ndarray:
    """Photon-count noise: each value ``x`` becomes ``Poisson(peak * x) / peak``, clipped to [0, 1]. ``peak`` is
    the count of a white pixel; the lower it is, the darker the scene and the stronger the noise (its variance
    is ``x / peak``).

    >>> noisy = add_poisson(np.full((128, 128, 1), 0.5), 30.0, seed=0)
    >>> round(float(noisy.mean()), 2), round(float(noisy.var() * 30 / 0.5), 1)
    (0.5, 1.0)
    """
    if not peak > 0:
        raise ValueError(f"Poisson peak must be > 0 (the photon count of white), got {peak}")
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.clip(image, 0.0, 1.0) * peak)
    return np.clip(counts / peak, 0.0, 1.0).astype(np.float32)


def add_impulse(image: np.ndarray, fraction: float, *, kind: str = "salt-pepper",
                seed: int | None = None) -> np.ndarray:
    """Impulse noise: each value (each channel of each pixel) replaced with probability ``fraction`` by black or
    white at even odds (``"salt-pepper"``) or by a uniform random value (``"random"``); the rest untouched.

    >>> noisy = add_impulse(np.full((100, 100, 1), 0.5), 0.2, seed=0)
    >>> round(float((noisy != 0.5).mean()), 2), sorted(set(np.unique(noisy).tolist()))
    (0.2, [0.0, 0.5, 1.0])
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"impulse fraction must be in [0, 1), got {fraction}")
    if kind not in IMPULSE_KINDS:
        raise ValueError(f"impulse kind must be one of {', '.join(IMPULSE_KINDS)}, got {kind!r}")
    rng = np.random.default_rng(seed)
    hit = rng.random(image.shape) < fraction
    values = rng.integers(0, 2, image.shape).astype(np.float64) if kind == "salt-pepper" else rng.random(image.shape)
    return np.where(hit, values, image).astype(np.float32)


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Crop to a multiple of ``factor`` (top-left) and shrink by ``factor`` with
    Pillow's Lanczos filter, as the super-resolution benchmarks do.

    >>> downscale(np.zeros((10, 9, 3)), 4).shape
    (2, 2, 3)
    """
    if int(factor) != factor or factor < 2:
        raise ValueError(f"downscale factor must be an integer >= 2, got {factor}")
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    if h == 0 or w == 0:
        raise ValueError(f"image of {image.shape[0]}x{image.shape[1]} is smaller than the factor {factor}")
    channels = []
    for c in range(image.shape[2]):
        plane = PILImage.fromarray(image[:h, :w, c].astype(np.float32), mode="F")
        channels.append(np.asarray(plane.resize((w // factor, h // factor), PILImage.LANCZOS)))
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def drop_pixels(image: np.ndarray, drop: float, *, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Zero each pixel (all channels) independently with probability ``drop``;
    returns the damaged image and the mask (1 = kept).

    >>> img, mask = drop_pixels(np.ones((2, 2, 3)), 0.0)
    >>> float(img.min()), mask.shape
    (1.0, (2, 2))
    """
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"drop probability must be in [0, 1), got {drop}")
    mask = bernoulli_mask(image.shape[0], image.shape[1], 1.0 - drop, seed=seed)
    return (image * mask[..., None]).astype(np.float32), mask


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur with a Gaussian of ``sigma`` pixels, reflecting at the borders (the
    same model as :class:`deepprior.operators.Blur`)."""
    with torch.no_grad():
        return from_tensor(Blur.gaussian(sigma)(to_tensor(image)))


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centred ``height x width`` crop.

    >>> center_crop(np.zeros((10, 10, 3)), 4, 6).shape
    (4, 6, 3)
    """
    top = (image.shape[0] - height) // 2
    left = (image.shape[1] - width) // 2
    if top < 0 or left < 0:
        raise ValueError(f"cannot crop {height}x{width} from {image.shape[0]}x{image.shape[1]}")
    return image[top : top + height, left : left + width]


@dataclass
class Degraded:
    """What :func:`degrade_image` made: the pixels, the transparency at their size, and the mask of a pixel drop."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    mask: np.ndarray | None = None


def degrade_image(pixels: np.ndarray, alpha: np.ndarray | None = None, *, noise: float | None = None,
                  correlation: float = 0.0, poisson: float | None = None, impulse: float | None = None,
                  impulse_kind: str = "salt-pepper", downscale_by: int | None = None, drop: float | None = None,
                  blur_sigma: float | None = None, seed: int | None = None) -> Degraded:
    """One corruption of an image (and its transparency): Gaussian ``noise`` (0-1 scale; spatially correlated
    over ``correlation`` pixels when > 0), Poisson noise of peak count ``poisson``, an ``impulse`` fraction of
    ``impulse_kind``, Lanczos ``downscale_by``, a pixel ``drop`` probability, or a Gaussian blur of
    ``blur_sigma`` pixels.

    >>> out = degrade_image(np.ones((8, 8, 1), np.float32), downscale_by=2)
    >>> out.pixels.shape, out.mask
    ((4, 4, 1), None)
    """
    chosen = [v is not None for v in (noise, poisson, impulse, downscale_by, drop, blur_sigma)]
    if sum(chosen) != 1:
        raise ValueError("choose one corruption: noise, Poisson, impulse, downscale, drop or blur")
    if correlation and noise is None:
        raise ValueError("a noise correlation goes with Gaussian noise only")
    if noise is not None:
        return Degraded(add_noise(pixels, noise, correlation=correlation, seed=seed), alpha)
    if poisson is not None:
        return Degraded(add_poisson(pixels, poisson, seed=seed), alpha)
    if impulse is not None:
        return Degraded(add_impulse(pixels, impulse, kind=impulse_kind, seed=seed), alpha)
    if downscale_by is not None:
        small = downscale(pixels, downscale_by)
        if alpha is not None:
            h, w = small.shape[:2]
            cropped = alpha[: h * downscale_by, : w * downscale_by]
            alpha = np.asarray(PILImage.fromarray(cropped).resize((w, h), PILImage.LANCZOS)).astype(alpha.dtype)
        return Degraded(small, alpha)
    if drop is not None:
        dropped, mask = drop_pixels(pixels, drop, seed=seed)
        return Degraded(dropped, alpha, mask)
    assert blur_sigma is not None
    return Degraded(blur(pixels, blur_sigma), alpha)
