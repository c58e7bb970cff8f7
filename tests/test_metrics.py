import math

import numpy as np
import pytest

from deepprior.metrics import psnr, psnr_sr, rgb_to_luma, ssim

RNG = np.random.default_rng(1)


def test_psnr_matches_formula():
    reference = RNG.uniform(0.2, 0.8, size=(8, 9, 3))
    signs = RNG.choice([-1.0, 1.0], size=reference.shape)
    estimate = reference + 0.05 * signs  # MSE exactly 0.0025
    assert psnr(reference, estimate) == pytest.approx(10 * math.log10(1 / 0.0025))
    assert psnr(reference * 255, estimate * 255, data_range=255) == pytest.approx(10 * math.log10(1 / 0.0025))


def test_psnr_of_identical_images_is_infinite():
    a = RNG.random((4, 4))
    assert psnr(a, a) == math.inf


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_ssim():
    a = RNG.random((16, 16, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + RNG.normal(0, 0.2, a.shape), 0, 1)
    assert ssim(a, noisy) < 0.9
    grey = a[:, :, :1]
    assert ssim(grey, grey) == pytest.approx(1.0)
    assert ssim(grey, noisy[:, :, :1]) == pytest.approx(ssim(grey[:, :, 0], noisy[:, :, 0]))


def test_luma_range():
    assert rgb_to_luma(np.ones((1, 1, 3))).item() == pytest.approx(235.0)
    assert rgb_to_luma(np.zeros((1, 1, 3))).item() == pytest.approx(16.0)
    assert rgb_to_luma(np.array([[[1.0, 0.0, 0.0]]])).item() == pytest.approx(16 + 65.481)
    luma = rgb_to_luma(RNG.random((3, 4, 3)))
    assert luma.shape == (3, 4) and luma.dtype == np.float64


def test_luma_of_grey_is_scaled_only():
    grey = np.array([[0.0, 0.5, 1.0]])
    assert rgb_to_luma(grey).tolist() == [[0.0, 127.5, 255.0]]
    assert rgb_to_luma(grey[:, :, None]).tolist() == [[0.0, 127.5, 255.0]]


def test_psnr_sr_ignores_the_border():
    reference = np.zeros((10, 10, 3))
    estimate = reference.copy()
    estimate[:2, :, :] = 1.0  # error only in the top 2 rows
    estimate[:, -2:, :] = 1.0  # and the right 2 columns
    assert psnr_sr(reference, estimate, 2) == math.inf
    assert psnr_sr(reference, estimate, 1) < 100


def test_psnr_sr_is_luma_psnr_of_the_centre():
    reference = np.zeros((8, 8, 3))
    estimate = reference.copy()
    estimate[4, 4] = 0.1  # luma error 0.1 * 219 = 21.9 at one of 4x4 centre pixels
    expected = 10 * math.log10(255**2 / (21.9**2 / 16))
    assert psnr_sr(reference, estimate, 2) == pytest.approx(expected)
    # a chroma-only change (equal luma) is invisible to psnr_sr
    grey = np.full((8, 8, 3), 0.5)
    shifted = grey.copy()
    shifted[4, 4] = [0.5 + 128.553 / 65.481 * 0.01, 0.49, 0.5]
    assert psnr_sr(grey, shifted, 2) > 200
    assert psnr(grey, shifted) < 80


def test_psnr_sr_rejects_too_large_border():
    with pytest.raises(ValueError, match="border"):
        psnr_sr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), 2)
