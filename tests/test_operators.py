"""Forward operators: shapes, values computed independently of the operators, adjoints, gradients, tiles."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torch import nn

from deepprior.operators import (
    Blur,
    Box,
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


def test_mask_zeroes_exactly_the_masked_pixels() -> None:
    x = torch.arange(1.0, 13.0).reshape(1, 2, 2, 3)  # two channels of [[1 2 3] [4 5 6]], [[7 8 9] [10 11 12]]
    y = Mask(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))(x)
    assert y.tolist() == [[[[1.0, 0.0, 3.0], [0.0, 0.0, 6.0]], [[7.0, 0.0, 9.0], [0.0, 0.0, 12.0]]]]
    mask = bernoulli_mask(16, 16, 0.5, seed=0)
    x = torch.rand(1, 3, 16, 16) + 0.1  # no pixel is 0 by chance
    y = Mask(mask)(x)
    known = torch.from_numpy(mask).bool()
    assert torch.equal(y[0, :, known], x[0, :, known])
    assert bool((y[0, :, ~known] == 0).all()) and bool((y[0, :, known] != 0).all())
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


@pytest.mark.parametrize("factor", [2, 3])
def test_box_downsampling_is_the_mean_of_each_block(factor: int) -> None:
    x = np.random.default_rng(0).random((2, 4 * factor, 5 * factor))
    blocks = x.reshape(2, 4, factor, 5, factor).mean(axis=(2, 4))
    y = Downsample(factor, "box")(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(y, blocks, atol=1e-12)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_blur_with_a_centred_delta_kernel_is_the_identity(size: int) -> None:
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 3.0  # normalised to 1
    x = torch.rand(1, 2, 9, 11)
    assert torch.allclose(Blur(delta)(x), x, atol=1e-7)


def test_any_blur_keeps_a_constant_image() -> None:
    kernel = np.random.default_rng(2).random((4, 7))  # even, wide, asymmetric
    y = Blur(kernel)(torch.full((1, 3, 10, 12), 0.37))
    assert y.shape == (1, 3, 10, 12) and torch.allclose(y, torch.tensor(0.37), atol=1e-6)


def test_compose_applies_operators_in_the_order_given() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = Mask(np.array([[1.0, 0.0], [0.0, 1.0]]))
    plus_one = Lambda(lambda t: t + 1)
    assert Compose(mask, plus_one)(x).tolist() == [[[[2.0, 1.0], [1.0, 5.0]]]]  # m * x + 1
    assert Compose(plus_one, mask)(x).tolist() == [[[[2.0, 0.0], [0.0, 5.0]]]]  # m * (x + 1)
    # box downsampling then doubling: twice the 2x2 block means, written out
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert Compose(Downsample(2, "box"), lambda t: 2 * t)(x).tolist() == [[[[5.0, 9.0], [21.0, 25.0]]]]
    with pytest.raises(ValueError, match="at least one"):
        Compose()


def test_identity_and_wrapping() -> None:
    x = torch.rand(1, 3, 4, 4)
    assert Identity()(x) is x and Identity().direct
    assert isinstance(as_operator(None), Identity)
    assert isinstance(as_operator(torch.sin), Lambda)
    blur = Blur.gaussian(1.0)
    assert as_operator(blur) is blur
    linear = nn.Linear(4, 4)
    wrapped = as_operator(linear)
    assert isinstance(wrapped, Lambda) and torch.equal(wrapped(x), linear(x))
    assert not any(op.direct for op in (wrapped, blur, Downsample(2), Mask(np.ones((2, 2)))))
    with pytest.raises(TypeError):
        as_operator(3)


def test_box_downsampling_adjoint_spreads_each_value_over_its_block() -> None:
    y = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = np.kron(y[0, 0].numpy(), np.ones((2, 2))) / 4  # each low-resolution pixel was a mean of 4
    np.testing.assert_allclose(Downsample(2, "box").adjoint(y, (1, 1, 4, 4))[0, 0].numpy(), expected)


@pytest.mark.parametrize(
    "op", [Identity(), Downsample(2), Downsample(3, "bicubic"), Blur.gaussian(1.2), Blur(np.arange(6.0).reshape(2, 3)),
           Mask(bernoulli_mask(12, 12, 0.5, seed=3)), Compose(Blur.gaussian(1.0), Downsample(2))]
)
def test_adjoint_passes_the_dot_product_test(op: torch.nn.Module) -> None:
    """<A x, y> = <x, A^T y> for random x and y: checks the adjoint without trusting how it is computed."""
    op = op.double()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 12, 12, generator=gen, dtype=torch.float64)
    ax = op(x)
    y = torch.rand(ax.shape, generator=gen, dtype=torch.float64)
    aty = op.adjoint(y, tuple(x.shape))
    assert aty.shape == x.shape
    assert float((ax * y).sum()) == pytest.approx(float((x * aty).sum()), rel=1e-10)


def test_identity_and_blur_tiles_are_the_same_operator_on_the_same_box() -> None:
    box = Box(8, 4, 16, 24)
    for op in (Identity(), Blur.gaussian(1.0)):
        tile_op, part = op.restrict(box)
        assert tile_op is op and part == box


def test_a_mask_tile_cuts_the_same_part_of_the_mask() -> None:
    mask = bernoulli_mask(20, 30, 0.5, seed=4)
    tile_op, part = Mask(mask).restrict(Box(5, 7, 10, 12))
    assert part == Box(5, 7, 10, 12)
    np.testing.assert_array_equal(tile_op.mask[0, 0].numpy(), mask[5:15, 7:19])
    x = torch.rand(1, 3, 20, 30)
    assert torch.equal(tile_op(x[..., 5:15, 7:19]), Mask(mask)(x)[..., 5:15, 7:19])
    mask[5, 7] = 1 - mask[5, 7]  # the tile keeps its own copy
    assert tile_op.mask[0, 0, 0, 0] != mask[5, 7]


def test_downsample_tiles_must_align_to_the_factor() -> None:
    op = Downsample(4, "box")
    tile_op, part = op.restrict(Box(8, 16, 24, 32))
    assert part == Box(2, 4, 6, 8)
    x = torch.rand(1, 1, 40, 48)
    # the box kernel reads only its own block, so a tile's measurement is exactly that part of the whole one
    assert torch.allclose(tile_op(x[..., 8:32, 16:48]), op(x)[..., 2:8, 4:12])
    for misaligned in (Box(2, 0, 24, 32), Box(0, 6, 24, 32), Box(0, 0, 22, 32), Box(0, 0, 24, 30)):
        with pytest.raises(ValueError, match="align to the scale 4"):
            op.restrict(misaligned)


@pytest.mark.parametrize("op", [nn.Linear(8, 8), lambda t: t.flip(-1), Compose(Blur.gaussian(1.0), Downsample(2))])
def test_operators_that_do_not_know_their_tiles_refuse_to_be_tiled(op: object) -> None:
    with pytest.raises(ValueError, match="tiling is not available"):
        as_operator(op).restrict(Box(0, 0, 8, 8))


@pytest.mark.parametrize("op", [Downsample(2), Blur.gaussian(0.8), Mask(bernoulli_mask(8, 8, 0.5, seed=0)),
                                Compose(Blur.gaussian(1.0), Downsample(2))])
def test_operators_are_differentiable(op: torch.nn.Module) -> None:
    op = op.double()
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))


def test_mask_first_guess_keeps_the_known_pixels_and_fills_every_hole() -> None:
    image = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).clone()
    mask = torch.ones(1, 1, 64, 64)
    mask[..., 20:44, 20:44] = 0  # a 24-pixel hole: filled from its border, smoothly
    op = Mask(mask)
    guess = op.first_guess(op(image), tuple(image.shape))
    known = mask.expand_as(image) > 0.5
    assert torch.equal(guess[known], image[known])
    assert float((guess - image).abs().mean()) < 0.02  # a ramp is filled close to itself
    assert float((guess - image).abs().max()) < 0.2
    assert float((op(image) - image).abs().max()) > 0.5


def test_downsample_first_guess_is_an_interpolation_of_the_right_size() -> None:
    image = torch.rand(1, 3, 8, 8)
    guess = Downsample(4).first_guess(image, (1, 3, 32, 32))
    assert tuple(guess.shape) == (1, 3, 32, 32) and float(guess.min()) >= 0 and float(guess.max()) <= 1
    assert torch.allclose(torch.nn.functional.avg_pool2d(guess, 4).mean(), image.mean(), atol=0.02)
