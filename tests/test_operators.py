"""Forward operators: shapes, known values, and gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepprior.operators import (
    Blur,
    Compose,
    Downsample,
    Identity,
    Lambda,
    Mask,
    as_operator,
    bernoulli_mask,
    gaussian_kernel,
    resampling_kernel,
)


def _lanczos_tap(d: float, a: int = 2) -> float:
    """The Lanczos window written out: a sin(pi d) sin(pi d / a) / (pi d)^2."""
    if d == 0:
        return 1.0
    return a * math.sin(math.pi * d) * math.sin(math.pi * d / a) / (math.pi * d) ** 2


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_lanczos2_kernel_sums_to_one_with_4f_taps(factor: int) -> None:
    k = resampling_kernel("lanczos2", factor)
    assert k.shape == (4 * factor, 4 * factor)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
    # Half-phase taps sit at (i + 0.5 - 2f) / f low-resolution pixels from the centre.
    taps = np.array([_lanczos_tap((i + 0.5 - 2 * factor) / factor) for i in range(4 * factor)])
    expected = np.outer(taps, taps) / np.outer(taps, taps).sum()
    assert np.allclose(k, expected)


@pytest.mark.parametrize("kind", ["lanczos2", "lanczos3", "bicubic", "box", "gauss"])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsample_gives_exact_size_and_keeps_constants(kind: str, factor: int) -> None:
    x = torch.full((1, 3, 12 * factor, 8 * factor), 0.3)
    y = Downsample(factor, kind)(x)
    assert y.shape == (1, 3, 12, 8)
    assert torch.allclose(y, torch.tensor(0.3), atol=1e-6)


def test_downsample_rejects_bad_factors_and_kernels() -> None:
    with pytest.raises(ValueError, match="factor"):
        Downsample(0)
    with pytest.raises(ValueError, match="unknown kernel"):
        Downsample(2, "sinc")


def test_mask_keeps_known_pixels_and_zeroes_the_rest() -> None:
    mask = bernoulli_mask(16, 16, 0.5, seed=0)
    x = torch.rand(1, 3, 16, 16)
    y = Mask(mask)(x)
    known = torch.from_numpy(mask).bool()
    assert torch.equal(y[0, :, known], x[0, :, known])
    assert float(y[0, :, ~known].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="mask"):
        Mask(mask)(torch.rand(1, 3, 8, 8))


def test_bernoulli_mask_keeps_about_the_ratio_and_is_seeded() -> None:
    m = bernoulli_mask(200, 200, 0.3, seed=1)
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert abs(m.mean() - 0.3) < 0.02
    assert np.array_equal(m, bernoulli_mask(200, 200, 0.3, seed=1))
    with pytest.raises(ValueError, match="keep"):
        bernoulli_mask(4, 4, 0.0)


def test_blur_of_an_impulse_is_the_kernel() -> None:
    kernel = np.zeros((3, 5), dtype=np.float32)
    kernel[0, 4] = 2.0  # asymmetric, to catch a flipped convolution
    kernel[2, 0] = 1.0
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    y = Blur(kernel)(x)[0, 0]
    assert y.shape == (9, 9)
    # convolution: the impulse at (4, 4) spreads to (4 + i - 1, 4 + j - 2) with weight k[i, j]
    assert float(y[3, 6]) == pytest.approx(2 / 3)
    assert float(y[5, 2]) == pytest.approx(1 / 3)
    assert float(y.sum()) == pytest.approx(1.0)


def test_gaussian_blur_keeps_constants_and_rejects_bad_sigma() -> None:
    assert torch.allclose(Blur.gaussian(2.0)(torch.full((1, 3, 20, 20), 0.7)), torch.tensor(0.7))
    assert gaussian_kernel(1.0).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        gaussian_kernel(-1.0)
    with pytest.raises(ValueError):
        Blur(np.ones(3))


def test_compose_lambda_and_identity() -> None:
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(Identity()(x), x)
    op = Compose(Blur.gaussian(1.0), Downsample(2), lambda t: t * 2)
    expected = Downsample(2)(Blur.gaussian(1.0)(x)) * 2
    assert torch.allclose(op(x), expected)
    assert isinstance(as_operator(None), Identity)
    assert isinstance(as_operator(torch.sin), Lambda)
    with pytest.raises(TypeError):
        as_operator(3)


@pytest.mark.parametrize(
    "op", [Downsample(2), Blur.gaussian(0.8), Mask(bernoulli_mask(8, 8, 0.5, seed=0)), Compose(Blur.gaussian(1.0), Downsample(2))]
)
def test_operators_are_differentiable(op: torch.nn.Module) -> None:
    op = op.double()
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
