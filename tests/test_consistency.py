"""The data-consistency stage: the output made to explain a noiseless measurement exactly, and which stage
runs after which fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepprior import engine
from deepprior.consistency import project_to_data
from deepprior.measurement import Measurement
from deepprior.noise import GaussianNoise, Noiseless
from deepprior.operators import Downsample, Identity, Mask
from deepprior.presets import get_preset


def _smooth(size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def test_mask_projection_puts_the_known_pixels_back_and_keeps_the_rest() -> None:
    truth, guess = _smooth(32), _smooth(32, seed=1)
    mask = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2)) < 0.5
    op = Mask(mask.float())
    out = project_to_data(guess, op(truth), op)
    assert torch.allclose(out[mask.expand_as(out)], truth[mask.expand_as(truth)], atol=1e-6)
    assert torch.equal(out[~mask.expand_as(out)], guess[~mask.expand_as(guess)])


def test_downsample_projection_explains_the_data_and_moves_the_least() -> None:
    truth = _smooth(64)
    guess = torch.nn.functional.avg_pool2d(truth, 3, 1, 1) + 0.01  # a blurred, shifted estimate
    op = Downsample(4)
    y = op(truth)
    out = project_to_data(guess, y, op, iterations=50, clip=False)
    assert float((op(out) - y).abs().max()) < 1e-4
    assert float((op(guess) - y).abs().max()) > 1e-2
    # the truth explains the data too, so the projection is no farther from the estimate than it
    assert float((out - guess).norm()) <= float((truth - guess).norm()) + 1e-4
    assert float((out - truth).norm()) < float((guess - truth).norm())


def _measurement(operator: torch.nn.Module, sigma: float | None) -> Measurement:
    noise = GaussianNoise(sigma) if sigma else Noiseless()
    return Measurement(np.zeros((8, 8, 3), np.float32), operator, noise, (8, 8))


@pytest.mark.parametrize(("operator", "sigma", "wanted", "preset", "stage"), [
    (Identity(), 0.1, None, "fast", "wiener"),
    (Identity(), 0.1, None, "denoise", None),
    (Identity(), 0.1, True, "denoise", "wiener"),
    (Identity(), 0.1, False, "fast", None),
    (Mask(np.ones((8, 8))), None, True, "denoise", "project"),
    (Mask(np.ones((8, 8))), None, None, "fast", None),      # the preset's stage does not suit the job: none
    (Downsample(2), None, False, "fast", None),
])
def test_the_stage_follows_the_measurement(operator: torch.nn.Module, sigma: float | None, wanted: bool | None,
                                           preset: str, stage: str | None) -> None:
    assert engine.refinement_for(get_preset(preset), _measurement(operator, sigma), wanted) == stage


@pytest.mark.parametrize(("operator", "sigma", "message"), [
    (Identity(), None, "noise level is 0"),
    (Downsample(2), 0.1, "noise seen through an operator"),
])
def test_asking_for_a_stage_that_cannot_run_is_refused(operator: torch.nn.Module, sigma: float | None,
                                                       message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engine.refinement_for(get_preset("fast"), _measurement(operator, sigma), True)


def test_the_classical_reconstruction_of_a_mask_is_biharmonic_inpainting() -> None:
    ramp = torch.linspace(0, 1, 24).repeat(2, 20, 1)[None]  # (1, 2, 20, 24): a plane, which biharmonic fills
    mask = torch.from_numpy(np.random.default_rng(0).random((20, 24)) > 0.5).float()
    op = Mask(mask)
    filled = op.classical(op(ramp), tuple(ramp.shape))
    assert torch.allclose(filled[..., 2:-2, 2:-2], ramp[..., 2:-2, 2:-2], atol=0.01)  # all but exact, away from the edges
    assert (filled - ramp).abs().mean() < (op.first_guess(op(ramp), tuple(ramp.shape)) - ramp).abs().mean()
    assert torch.equal(filled * mask, ramp * mask)


def test_the_projection_stage_averages_with_the_classical_reconstruction_when_asked() -> None:
    from deepprior.fitting.result import FitResult

    rng = np.random.default_rng(1)
    clean = torch.from_numpy(rng.random((1, 1, 16, 16))).float()
    op = Mask(torch.from_numpy(rng.random((16, 16)) > 0.5).float())
    y = op(clean)
    fitted = torch.full_like(clean, 0.5)
    runs = {}
    for weight in (0.0, 0.5):
        result = FitResult(image=fitted.clone(), average=None)
        engine.projection_stage(result, y, op, classical_weight=weight)
        runs[weight] = result
    assert "classical_weight" not in runs[0.0].refinement
    assert runs[0.5].refinement["classical_weight"] == 0.5
    expected = project_to_data(0.5 * fitted + 0.5 * op.classical(y, tuple(clean.shape)), y, op)
    assert torch.allclose(runs[0.5].refined, expected, atol=1e-6)
    assert torch.allclose(runs[0.5].refined * op.mask, y, atol=1e-6)  # the known pixels stay as measured


def test_a_classical_weight_outside_0_1_is_refused() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="classical_weight"):
        replace(get_preset("fast-inpaint"), classical_weight=1.0)


def _stripes(size: int = 48) -> torch.Tensor:
    """A repeating texture: what collaborative filtering finds many copies of."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.35 * torch.sin(2 * torch.pi * (xx + 0.5 * yy) / 6)).float()[None, None]


def test_the_collaborative_passes_improve_on_the_projection_and_keep_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepprior import presets
    from deepprior.consistency import collaborative_projection
    from deepprior.fitting.result import FitResult

    clean = _stripes()
    op = Mask(torch.from_numpy(np.random.default_rng(2).random((48, 48)) > 0.5).float())
    y = op(clean)
    fitted = op.classical(y, tuple(clean.shape)).float()  # a smooth first estimate, as a fit would give
    levels = get_preset("fast-inpaint").collaborative_levels
    assert len(levels) == 6 and list(levels) == sorted(levels, reverse=True)
    result = FitResult(image=fitted.clone(), average=None)
    engine.projection_stage(result, y, op, clean, levels=levels)
    info = result.refinement
    assert info["collaborative_passes"] == 6
    assert info["psnr_refined"] > info["psnr_projected"] + 1.0  # the stripes repeat: the passes restore them
    assert torch.allclose(result.refined * op.mask, y, atol=1e-6)
    assert torch.allclose(result.refined, collaborative_projection(project_to_data(fitted, y, op), y, op, levels), atol=1e-6)

    monkeypatch.setattr(presets, "COLLABORATIVE_MAX_PIXELS", 48 * 48 - 1)  # one value too many: skipped
    result = FitResult(image=fitted.clone(), average=None)
    engine.projection_stage(result, y, op, clean, levels=levels)
    assert result.refinement["collaborative_passes"] == 0 and "collaborative_skipped" in result.refinement
    assert torch.allclose(result.refined, project_to_data(fitted, y, op), atol=1e-6)


def test_with_a_classical_weight_both_are_refined_apart_then_averaged_then_refined_again() -> None:
    from deepprior.consistency import collaborative_projection
    from deepprior.fitting.result import FitResult

    clean = _stripes()
    op = Mask(torch.from_numpy(np.random.default_rng(4).random((48, 48)) > 0.5).float())
    y = op(clean)
    fitted = torch.full_like(clean, 0.5)
    preset = get_preset("fast-inpaint")
    levels, final = preset.collaborative_levels, preset.collaborative_final_levels
    assert len(final) == 3 and max(final) < min(levels[:3])  # the last passes are gentle
    result = FitResult(image=fitted.clone(), average=None)
    engine.projection_stage(result, y, op, clean, 0.5, levels, final)

    def passes(x: torch.Tensor, schedule: tuple[float, ...]) -> torch.Tensor:
        return collaborative_projection(project_to_data(x, y, op), y, op, schedule)

    classical = op.classical(y, tuple(clean.shape)).float()
    expected = passes(0.5 * passes(fitted, levels) + 0.5 * passes(classical, levels), final)
    assert torch.allclose(result.refined, expected, atol=1e-5)
    assert result.refinement["collaborative_passes"] == 2 * len(levels) + len(final)
    assert torch.allclose(result.refined * op.mask, y, atol=1e-6)


def test_collaborative_levels_need_the_projection_stage() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="collaborative levels"):
        replace(get_preset("fast"), collaborative_levels=(0.05,))
    with pytest.raises(ValueError, match="collaborative levels"):
        replace(get_preset("fast-inpaint"), collaborative_levels=(0.05, 0.0))
    with pytest.raises(ValueError, match="collaborative levels"):
        replace(get_preset("fast"), collaborative_final_levels=(0.05,))


def test_a_measurement_outside_the_operators_range_is_projected_without_nans() -> None:
    # a mask's measurement that still holds values where the mask hides them (as a photo read from disk does)
    rng = np.random.default_rng(3)
    op = Mask(torch.from_numpy(rng.random((16, 16)) > 0.5).float())
    y = torch.from_numpy(rng.random((1, 3, 16, 16))).float()  # not op(anything): nonzero under the mask's zeros
    out = project_to_data(torch.full_like(y, 0.5), y, op)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out * op.mask, y * op.mask, atol=1e-6)  # the known pixels are y's
