"""Collaborative Wiener filtering: block matching, linearity and divergence, and its place after the Wiener mix."""
from __future__ import annotations

import pytest
import torch

from deepprior.blockmatch import _starts, candidates, collaborative_refine, collaborative_wiener, match
from deepprior.refine import wiener_refine


def _texture(size: int = 48) -> torch.Tensor:
    """A repetitive grey texture (stripes and dots): the kind of image where similar patches abound."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    plane = 0.5 + 0.25 * torch.sin(x * 0.9 + 0.3 * y) + 0.2 * (torch.cos(y * 1.3) > 0.5).float()
    return plane.clamp(0, 1)[None, None]


def _noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_matching_keeps_each_reference_first_and_every_match_inside_its_window_and_the_image() -> None:
    guide = torch.rand(30, 37, generator=torch.Generator().manual_seed(0))
    rows, cols = _starts(30, 6, 4), _starts(37, 6, 4)
    assert int(rows[-1]) == 30 - 6 and int(cols[-1]) == 37 - 6  # the last window ends on the last pixel
    ys, xs = match(guide, rows, cols, patch=6, group=5, search=7)
    ref_y, ref_x = torch.meshgrid(rows, cols, indexing="ij")
    assert ys.shape == (rows.numel() * cols.numel(), 5)
    assert torch.equal(ys[:, 0], ref_y.flatten()) and torch.equal(xs[:, 0], ref_x.flatten())
    assert int(ys.min()) >= 0 and int(ys.max()) <= 30 - 6 and int(xs.min()) >= 0 and int(xs.max()) <= 37 - 6
    assert int((ys - ref_y.flatten()[:, None]).abs().max()) <= 7 and int((xs - ref_x.flatten()[:, None]).abs().max()) <= 7


def test_matching_finds_an_exact_copy_of_a_patch() -> None:
    guide = torch.rand(40, 40, generator=torch.Generator().manual_seed(1))
    guide[20:28, 25:33] = guide[4:12, 8:16]  # a copy 16 rows down and 17 columns right
    ys, xs = match(guide, torch.tensor([4]), torch.tensor([8]), patch=8, group=2, search=17)
    assert (int(ys[0, 1]), int(xs[0, 1])) == (20, 25)


def test_the_filter_is_linear_in_the_noisy_image_and_its_divergence_is_each_pixels_own_gain() -> None:
    pilot = _texture(32)
    a, b = 0.1 * _noise(pilot.shape, 1), 0.1 * _noise(pilot.shape, 2)
    f = lambda y: collaborative_wiener(y, pilot, 0.1, search=6)
    (fa, divergence), (fb, _), (fab, _) = f(a), f(b), f(2 * a - b)
    assert torch.allclose(fab, 2 * fa - fb, atol=1e-4)
    # the divergence of a linear map is its trace: probe it with random vectors (Hutchinson)
    probes = [_noise(pilot.shape, 10 + k).sign() for k in range(200)]
    estimate = sum(float((p * f(p)[0]).sum()) for p in probes) / len(probes)
    assert divergence == pytest.approx(estimate, rel=0.1)


def test_collaborative_filtering_beats_the_window_wiener_filter_on_a_repetitive_texture() -> None:
    clean = _texture(48)
    noisy = clean + 0.1 * _noise(clean.shape, 3)
    pilot = wiener_refine(noisy, clean + 0.05 * _noise(clean.shape, 4), 0.1)  # a fair, imperfect pilot
    mse = lambda x: float(((x - clean) ** 2).mean())
    window = wiener_refine(noisy, pilot, 0.1)
    collaborative = collaborative_refine(noisy, pilot, 0.1)
    assert collaborative.shape == noisy.shape and 0 <= float(collaborative.min()) <= float(collaborative.max()) <= 1
    assert mse(collaborative) < 0.8 * mse(window) < mse(noisy) / 4


def test_colour_images_are_matched_on_luminance_and_every_channel_is_filtered() -> None:
    clean = torch.cat([_texture(40), _texture(40).flip(-1), 1 - _texture(40)], dim=1)
    noisy = clean + 0.1 * _noise(clean.shape, 5)
    refined = collaborative_refine(noisy, clean, 0.1)
    for c in range(3):
        assert float(((refined[:, c] - clean[:, c]) ** 2).mean()) < float(((noisy[:, c] - clean[:, c]) ** 2).mean()) / 5


def test_large_images_are_filtered_a_band_at_a_time_with_the_same_result() -> None:
    clean = _texture(40)
    noisy = clean + 0.1 * _noise(clean.shape, 6)
    whole, d_whole = collaborative_wiener(noisy, clean, 0.1, search=5)
    banded, d_banded = collaborative_wiener(noisy, clean, 0.1, search=5, budget=1)  # one row of references a band
    assert torch.allclose(whole, banded, atol=1e-5) and d_whole == pytest.approx(d_banded, rel=1e-5)


def test_bad_arguments_and_tiny_images() -> None:
    tiny = torch.rand(1, 3, 6, 6)
    assert torch.equal(collaborative_refine(tiny, tiny * 0.5, 0.1), tiny * 0.5)  # smaller than a patch: the pilot
    with pytest.raises(ValueError, match="must both be"):
        collaborative_refine(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        collaborative_refine(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), 0.0)
    with pytest.raises(ValueError, match="smaller than"):
        collaborative_wiener(torch.rand(1, 1, 6, 6), torch.rand(1, 1, 6, 6), 0.1)


@pytest.mark.parametrize("size", [(8, 11), (9, 12), (12, 15)])
def test_images_barely_larger_than_a_patch_stack_only_patches_inside_them(size: tuple[int, int]) -> None:
    # an 8x11 plane has 4 patch positions: a stack of 16 would have to reach outside it
    height, width = size
    guide = torch.rand(height, width, generator=torch.Generator().manual_seed(2))
    rows, cols = _starts(height, 8, 3), _starts(width, 8, 3)
    ys, xs = match(guide, rows, cols, patch=8, group=16, search=16)
    assert ys.shape[1] == min(16, candidates(height, width, 8, 16))
    assert int(ys.min()) >= 0 and int(ys.max()) <= height - 8 and int(xs.min()) >= 0 and int(xs.max()) <= width - 8
    clean = torch.full((1, 3, height, width), 0.4)
    noisy = clean + 0.1 * _noise(clean.shape, 7)
    refined = collaborative_refine(noisy, clean, 0.1)
    assert float(((refined - clean) ** 2).mean()) < float(((noisy - clean) ** 2).mean()) / 2


def test_the_divergence_can_be_left_out_without_changing_the_filter() -> None:
    pilot = _texture(32)
    noisy = pilot + 0.1 * _noise(pilot.shape, 8)
    with_it, divergence = collaborative_wiener(noisy, pilot, 0.1, search=6)
    without, nothing = collaborative_wiener(noisy, pilot, 0.1, search=6, divergence=False)
    assert torch.equal(with_it, without) and divergence > 0 and nothing != nothing  # NaN
