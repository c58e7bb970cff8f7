"""Find the values impulse noise replaced, so that they can be restored as missing pixels.

Salt-and-pepper noise replaces a fraction of the values (each channel of each pixel on its own) by black or white
and leaves the rest exact. The replaced values carry no information, the others all of it: once they are found,
the photo is an inpainting problem (:class:`deepprior.operators.Mask` with a mask per channel), which the
inpainting recipes solve far better than a median filter can. Finding them is easy where they stand out: a value
at either end of the range that differs from the median of its neighbours. A photo's own black and white
(saturated highlights, deep shadows) come in patches that agree with their neighbours, so they are kept.
"""
from __future__ import annotations

import numpy as np

__all__ = ["IMPULSE_CONTRAST", "IMPULSE_DOMINANCE", "IMPULSE_MAX_OTHERS", "IMPULSE_MIN_SHARE", "looks_like_salt_and_pepper",
           "salt_and_pepper_known", "standing_out"]

#: How far (on the [0, 1] scale) a value must lie from the median of the values around it that are not black or
#: white to stand out as an impulse: a quarter of the range.
IMPULSE_CONTRAST = 0.25

#: ``--noise auto`` takes a photo for salt-and-pepper noise when at least this share of its values are black or
#: white and stand out (1 %)...
IMPULSE_MIN_SHARE = 0.01

#: ...while at most this share of its other values stand out (4 %): in a photo with salt-and-pepper noise the
#: other values are exact and agree with their neighbours; Gaussian noise strong enough to clip often to black
#: or white makes the other values stand out as often. Both chosen on six CBSD68 tuning photos
#: (``bench/studies/impulse_detection.py --data ../shared/data``): clean or with Gaussian noise up to sigma 25,
#: at most 0.6 % of the values are black or white and stand out; from sigma 30 on up to 17 %, but wherever that
#: reaches 1 %, 6.7 % or more of the others stand out too; salt-and-pepper noise from 2 % to 70 % gives 1.6 % to
#: 60 %, and at most 2.7 % of the others.
IMPULSE_MAX_OTHERS = 0.04

#: ...or, when many values are impulses, at most half as many of the others: a textured photo has a few per cent
#: of values that stand out by themselves (128x128 CBSD68 crops under salt-and-pepper: 4.8 % for 108070 at 20 %,
#: with 16 % impulses; 4.1 % for 102061 at 50 %, with 43 %; the others at most 0.3 times the impulses), while
#: Gaussian noise that clips as often to black or white makes at least 1.8 times as many of the others stand out
#: as it makes impulses (``bench/studies/impulse_detection.py``, sigma 30 to 75). Chosen on the tuning photos of
#: ``../shared/data/tune/cbsd68`` only: the six of that study and the ten 128x128 crops of
#: ``bench/impulse_noise.py --data ../shared/data`` (which are the first ten CBSD68 photos).
IMPULSE_DOMINANCE = 2.0

_EXTREME = 0.5 / 255  # within half a grey level of black or white
_SAMPLES = 20_000  # values examined by the automatic test
_RADIUS = 2  # the neighbourhood: 5x5 pixels


def _extremes(pixels: np.ndarray) -> np.ndarray:
    return (pixels <= _EXTREME) | (pixels >= 1 - _EXTREME)


def salt_and_pepper_known(pixels: np.ndarray) -> np.ndarray:
    """The mask (``(H, W, C)`` float32, 1 = kept) of the values salt-and-pepper noise left alone: every value
    that is not black or white. Where the noise is known to be salt-and-pepper, a black or white value is far
    more likely an impulse than the photo's own; a photo's saturated regions are filled again from their
    (equally saturated) surroundings.

    >>> image = np.full((4, 4, 1), 0.5, np.float32); image[1, 2, 0] = 1.0
    >>> salt_and_pepper_known(image)[..., 0].astype(int).tolist()[1]
    [1, 1, 0, 1]
    """
    return (~_extremes(np.asarray(pixels))).astype(np.float32)


def standing_out(pixels: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """On a random sample of values: the share of all values that are black or white, the share of those that
    stand out (differ by more than :data:`IMPULSE_CONTRAST` from the median of the values in their 5x5
    neighbourhood, same channel, that are neither), and the share of the other values that stand out."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width, channels = pixels.shape
    extreme = _extremes(pixels)
    rng = np.random.default_rng(seed)
    count = min(_SAMPLES, pixels.size)
    rows, cols, chans = (rng.integers(0, n, count) for n in (height, width, channels))
    padded = np.pad(np.where(extreme, np.nan, pixels), ((_RADIUS, _RADIUS), (_RADIUS, _RADIUS), (0, 0)),
                    mode="reflect")
    offsets = np.arange(-_RADIUS, _RADIUS + 1)
    dy, dx = (d.ravel() for d in np.meshgrid(offsets, offsets, indexing="ij"))
    around = padded[rows[:, None] + _RADIUS + dy, cols[:, None] + _RADIUS + dx, chans[:, None]]
    around[:, len(dy) // 2] = np.nan  # not the value itself
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a neighbourhood of impulses only has no median
            median = np.nanmedian(around, axis=1)
    values, is_extreme = pixels[rows, cols, chans], extreme[rows, cols, chans]
    stands = np.abs(values - median) > IMPULSE_CONTRAST  # False where the median is NaN
    share = float(is_extreme.mean())
    of_extremes = float(stands[is_extreme].mean()) if is_extreme.any() else 0.0
    of_others = float(stands[~is_extreme].mean()) if (~is_extreme).any() else 0.0
    return share, of_extremes, of_others


def looks_like_salt_and_pepper(pixels: np.ndarray) -> float | None:
    """The share of black or white values when the photo looks corrupted by salt-and-pepper noise (at least
    :data:`IMPULSE_MIN_SHARE` of its values black or white and standing out, at most
    :data:`IMPULSE_MAX_OTHERS` of the others standing out, or :data:`IMPULSE_DOMINANCE` times fewer than the
    impulses), else ``None``.

    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (64, 1))[..., None]
    >>> looks_like_salt_and_pepper(clean) is None
    True
    >>> noisy = np.where(rng.random(clean.shape) < 0.1, rng.integers(0, 2, clean.shape), clean)
    >>> round(looks_like_salt_and_pepper(noisy), 1)
    0.1
    """
    share, of_extremes, of_others = standing_out(pixels)
    impulses = share * of_extremes
    if impulses >= IMPULSE_MIN_SHARE and of_others <= max(IMPULSE_MAX_OTHERS, impulses / IMPULSE_DOMINANCE):
        return share
    return None
