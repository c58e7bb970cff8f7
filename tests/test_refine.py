"""The Wiener stage after a denoising fit: what it computes, and where the pipeline and the CLI use it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepprior.refine import dct_basis, principal_colours, sure_weights, wiener_mix, wiener_refine


def _noisy_pair(size: int = 40, sigma: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from skimage import data

    clean = torch.tensor(data.astronaut()[100 : 100 + size, 180 : 180 + size] / 255.0, dtype=torch.float32)
    clean = clean.permute(2, 0, 1)[None]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return clean, clean + sigma * noise


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.mean((a - b) ** 2))


def test_dct_basis_is_orthonormal() -> None:
    basis = dct_basis(8).reshape(64, 64).double()
    assert torch.allclose(basis @ basis.T, torch.eye(64, dtype=torch.float64), atol=1e-6)


def test_the_two_pass_window_transform_is_the_dct_of_every_window() -> None:
    from deepprior.refine import _WindowDCT

    plane = torch.rand(1, 1, 17, 23, generator=torch.Generator().manual_seed(2))
    for size, stride in ((8, 1), (6, 3)):
        transform = _WindowDCT(size, stride, plane.device)
        coefficients = transform.analysis(plane)
        dense = torch.nn.functional.conv2d(plane, dct_basis(size), stride=stride)
        reordered = coefficients.reshape(1, size, size, *coefficients.shape[-2:]).transpose(1, 2)
        assert torch.allclose(reordered.reshape(dense.shape), dense, atol=1e-5)
        back = torch.nn.functional.conv_transpose2d(dense, dct_basis(size), stride=stride)
        assert torch.allclose(transform.synthesis(coefficients), back, atol=1e-4)


def test_a_good_pilot_removes_most_noise_and_a_noisy_pilot_little() -> None:
    clean, noisy = _noisy_pair()
    assert _mse(wiener_refine(noisy, clean, 0.1), clean) < _mse(noisy, clean) / 4
    smooth = torch.nn.functional.avg_pool2d(noisy, 3, stride=1, padding=1, count_include_pad=False)
    refined = wiener_refine(noisy, smooth, 0.1)
    assert _mse(refined, clean) < _mse(smooth, clean)  # better than its (blurred) pilot


def test_bands_and_odd_sizes_give_the_same_image() -> None:
    clean, noisy = _noisy_pair(size=37)
    whole = wiener_refine(noisy, clean, 0.1, band=1000)
    for band, stride in ((5, 1), (6, 2), (3, 3)):
        banded = wiener_refine(noisy, clean, 0.1, band=band, stride=stride)
        assert banded.shape == noisy.shape
        if stride == 1:
            assert torch.allclose(banded, whole, atol=1e-5)
    grey = wiener_refine(noisy[:, :1], clean[:, :1], 0.1)
    assert grey.shape == (1, 1, 37, 37) and 0 <= float(grey.min()) and float(grey.max()) <= 1


def test_bad_arguments_are_refused() -> None:
    clean, noisy = _noisy_pair()
    with pytest.raises(ValueError, match="sigma"):
        wiener_refine(noisy, clean, 0.0)
    with pytest.raises(ValueError, match="both be"):
        wiener_refine(noisy, clean[..., :20], 0.1)
    tiny = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    pilot = tiny * 0.5
    assert wiener_refine(tiny, pilot, 0.1) is pilot  # smaller than a window: the pilot comes back
    mix = wiener_mix(tiny, pilot, 0.1)
    assert torch.equal(mix.image, pilot) and mix.weights == {} and mix.patches == []


def test_principal_colours_are_orthonormal_and_find_the_hue() -> None:
    clean, _ = _noisy_pair()
    hue = torch.tensor([0.2, 0.5, 0.84])
    tinted = clean.mean(dim=1, keepdim=True) * hue[None, :, None, None]
    axes = principal_colours(tinted)
    assert torch.allclose(axes @ axes.T, torch.eye(3), atol=1e-5)
    assert float(abs(axes[0] @ hue) / hue.norm()) > 0.999


def test_sure_weights_are_the_best_convex_mixture() -> None:
    g = torch.Generator().manual_seed(1)
    residuals = torch.randn(4, 50, generator=g, dtype=torch.float64)
    gram = residuals @ residuals.T
    divergences = torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    weights, risk = sure_weights(gram, divergences, 0.5, 50)
    assert bool((weights >= 0).all()) and abs(float(weights.sum()) - 1) < 1e-9

    def sure(a: torch.Tensor) -> float:
        return float(a @ gram @ a + 2 * 0.5 * divergences @ a) / 50 - 0.5

    assert abs(sure(weights) - risk) < 1e-9
    for _ in range(200):  # no point of the simplex does better
        a = torch.rand(4, generator=g, dtype=torch.float64) ** 3
        assert sure(a / a.sum()) >= risk - 1e-9


def test_the_divergence_is_the_trace_of_the_linear_filter() -> None:
    """With the pilot fixed the filter is linear in the noisy image: its divergence is the sum of the
    responses of each value to itself, found here one impulse at a time."""
    from deepprior.refine import _wiener

    clean, noisy = _noisy_pair(size=8)  # even: the stride-2 windows end on the last pixel, so the trace is exact
    for patch, colour, stride in ((6, "principal", 1), (7, "opponent", 1), (4, "opponent", 2)):
        base, divergence = _wiener(noisy, clean, 0.1, patch, stride, 3, colour)
        trace = 0.0
        for index in range(noisy.numel()):
            impulse = torch.zeros(noisy.numel())
            impulse[index] = 1.0
            moved, _ = _wiener(noisy + impulse.reshape(noisy.shape), clean, 0.1, patch, stride, 3, colour)
            trace += float((moved - base).flatten()[index])
        assert abs(divergence - trace) < 1e-3 * noisy.numel(), (patch, colour, stride)


def test_the_mixture_is_the_single_filter_when_there_is_one_and_gains_on_few_hues() -> None:
    clean, noisy = _noisy_pair()
    single = wiener_mix(noisy, clean, 0.1, patches=(8,), colours=("opponent",))
    assert single.weights == {"opponent 8": 1.0}
    assert torch.allclose(single.image, wiener_refine(noisy, clean, 0.1), atol=1e-6)
    tinted = clean.mean(dim=1, keepdim=True) * torch.tensor([0.3, 0.55, 0.9])[None, :, None, None]
    noisy = tinted + 0.1 * torch.randn(tinted.shape, generator=torch.Generator().manual_seed(4))
    pilot = torch.nn.functional.avg_pool2d(noisy, 3, stride=1, padding=1, count_include_pad=False)
    mix = wiener_mix(noisy, pilot, 0.1)
    assert sum(w for name, w in mix.weights.items() if name.startswith("principal")) > 0.5
    assert _mse(mix.image, tinted) < 0.9 * _mse(wiener_refine(noisy, pilot, 0.1), tinted)
    assert mix.patches == [6, 8, 10] and mix.colours == ["opponent", "principal"]
    grey = wiener_mix(noisy[:, :1], pilot[:, :1], 0.1)
    assert set(grey.weights) <= {"grey 6", "grey 8", "grey 10"} and grey.image.shape == (1, 1, 40, 40)
    assert grey.colours == []
    small = wiener_mix(noisy[..., :7, :9], pilot[..., :7, :9], 0.1)  # windows larger than the image are left out
    assert small.patches == [6] and set(small.weights) == {"opponent 6", "principal 6"}


def _smooth_noisy(size: int = 32, sigma: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A smooth colour image (H, W, 3) and a noisy copy clipped to [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    clean = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy * yy, 0.5 + 0.3 * np.sin(3 * xx + 2 * yy)], -1)
    noisy = np.clip(clean + sigma * np.random.default_rng(0).standard_normal(clean.shape), 0, 1)
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_pipeline_runs_the_stage_and_it_improves_on_the_fit() -> None:
    from dataclasses import replace

    from conftest import tiny_preset

    from deepprior.imageio import from_tensor
    from deepprior.jobs import TaskOptions
    from deepprior.metrics import psnr
    from deepprior.pipeline import Settings, restore
    from deepprior.tasks import job_from_arrays

    clean, noisy = _smooth_noisy()
    job = job_from_arrays("denoise", {"image": noisy}, TaskOptions(sigma=0.1), ground_truth=clean)
    preset = replace(tiny_preset(40, reg_noise_std=0.0), refine="wiener")
    out = restore(job, Settings(preset=preset, seed=0, iterations=40, device="cpu", precision="fp32"))
    result = out.result
    assert result.refinement["method"] == "wiener" and result.refined is not None
    assert result.refinement["patches"] == [6, 8, 10] and result.refinement["colours"] == ["opponent", "principal"]
    assert abs(sum(result.refinement["weights"].values()) - 1) < 1e-3
    # the restored image is the refined one, which differs from the fit and is closer to the clean image
    fitted, refined = from_tensor(result.fitted), from_tensor(result.output)
    assert result.output is result.refined and np.array_equal(out.image, refined)
    assert np.abs(refined - fitted).max() > 0.01
    assert psnr(clean, refined) > psnr(clean, fitted) + 0.3
    assert psnr(clean, fitted) > psnr(clean, noisy)  # a fair pilot: the fit has denoised already
    assert result.refinement["psnr_fitted"] == pytest.approx(psnr(clean, fitted), abs=1e-3)
    assert result.refinement["psnr_refined"] == pytest.approx(psnr(clean, refined), abs=1e-3)
    assert result.refinement["collaborative_passes"] == 1  # then stacks of similar patches
    assert result.refinement["psnr_refined"] > result.refinement["psnr_wiener"] > result.refinement["psnr_fitted"]
    assert out.psnr == pytest.approx(psnr(clean, refined), abs=1e-6)
    plain = restore(job, Settings(preset=preset, seed=0, iterations=40, device="cpu", precision="fp32", refine=False))
    assert plain.result.refined is None and plain.result.refinement == {}
    assert torch.equal(plain.result.output, plain.result.fitted)
    assert torch.equal(plain.result.fitted, result.fitted)  # the stage never touches the fit
    paper = restore(job, Settings(preset=replace(preset, refine=None), seed=0, iterations=1, device="cpu"))
    assert paper.result.refinement == {} and paper.result.refined is None
    with pytest.raises(ValueError, match="unknown refinement"):
        replace(preset, refine="median")


def test_the_default_denoising_recipe_refines_and_noise_through_an_operator_refuses_it() -> None:
    from deepprior.jobs import InputError, TaskOptions
    from deepprior.pipeline import Settings, plan, restore
    from deepprior.tasks import job_from_arrays

    _, noisy = _smooth_noisy()
    job = job_from_arrays("denoise", {"image": noisy}, TaskOptions(sigma=0.1))
    out = restore(job, Settings(iterations=1, seed=0, device="cpu"))
    assert out.preset.name == "fast" and out.result.refinement["method"] == "wiener"
    assert out.result.refinement["sigma"] == pytest.approx(0.1)
    small = job_from_arrays("superres", {"image": noisy[:16, :16]}, TaskOptions(scale=2))
    out = restore(small, Settings(preset="superres", iterations=1, seed=0, device="cpu", refine=True))
    assert out.result.refinement["method"] == "project"  # noiseless: the data projection instead
    blurred = job_from_arrays("deblur", {"image": noisy}, TaskOptions(kernel="gaussian:1.0", sigma=0.1))
    with pytest.raises(InputError, match="noise seen through an operator"):
        plan(blurred, Settings(preset="deblur", iterations=1, seed=0, refine=True))


def test_cli_records_the_stage_and_refuses_it_off_denoising(tmp_path, capsys) -> None:
    from deepprior.cli import main
    from deepprior.imageio import write_image

    clean, noisy = _noisy_pair(size=32)
    write_image(tmp_path / "noisy.png", noisy.clamp(0, 1)[0].permute(1, 2, 0).numpy())
    write_image(tmp_path / "clean.png", clean[0].permute(1, 2, 0).numpy())
    common = [str(tmp_path / "noisy.png"), "--iterations", "2", "--seed", "0", "-q", "--sigma", "25",
              "--ground-truth", str(tmp_path / "clean.png")]
    assert main(["denoise", *common, "-o", str(tmp_path / "a.png"), "--record", str(tmp_path / "a.json")]) == 0
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["preset"] == "fast" and record["refinement"]["method"] == "wiener"
    assert abs(record["psnr"] - record["refinement"]["psnr_refined"]) < 0.05  # the written file is the refined one
    assert main(["denoise", *common, "--no-refine", "-o", str(tmp_path / "b.png"), "--record",
                 str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["refinement"] is None
    assert main(["denoise", *common, "--preset", "denoise", "--refine", "-o", str(tmp_path / "c.png"), "--record",
                 str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["refinement"]["method"] == "wiener"
    capsys.readouterr()
    assert main(["deblur", str(tmp_path / "noisy.png"), "--kernel", "gaussian:1.0", "--sigma", "10", "-o",
                 str(tmp_path / "d.png"), "--refine", "--iterations", "1", "-q"]) == 2
    assert not (tmp_path / "d.png").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noise seen through an operator" in err[0]


def test_later_collaborative_passes_are_each_piloted_by_the_pass_before() -> None:
    from deepprior.blockmatch import collaborative_refine
    from deepprior.engine import wiener_stage
    from deepprior.fitting import FitResult

    generator = torch.Generator().manual_seed(3)
    clean = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 40, 40, generator=generator), 5, 1, 2)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=generator)
    pilot = clean + 0.05 * torch.randn(clean.shape, generator=generator)  # a fair, imperfect fit
    results = {}
    for passes in (1, 2):
        results[passes] = FitResult(image=pilot, average=None)
        wiener_stage(results[passes], noisy, 0.1, passes=passes)
        assert results[passes].refinement["collaborative_passes"] == passes
    again = collaborative_refine(noisy, results[1].refined, 0.1)
    assert torch.allclose(results[2].refined, again, atol=1e-6)
    with pytest.raises(ValueError, match="passes"):
        wiener_stage(FitResult(image=pilot, average=None), noisy, 0.1, passes=0)


def test_after_a_fit_that_reached_the_noise_level_the_stage_keeps_its_share_of_the_mixture() -> None:
    from dataclasses import replace

    from deepprior.engine import wiener_stage
    from deepprior.fitting import FitResult
    from deepprior.presets import get_preset
    from deepprior.refine import wiener_mix

    generator = torch.Generator().manual_seed(4)
    clean = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 40, 40, generator=generator), 5, 1, 2)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=generator)
    pilot = clean + 0.05 * torch.randn(clean.shape, generator=generator)
    reached = {"rule": "discrepancy", "stopped_at": 120}  # the fit stopped at the noise level
    alone = FitResult(image=pilot, average=None, stopping=reached)
    shared = FitResult(image=pilot, average=None, stopping=reached)
    cut_short = FitResult(image=pilot, average=None, stopping={"rule": "discrepancy", "stopped_at": None})
    wiener_stage(alone, noisy, 0.1, passes=2)
    wiener_stage(shared, noisy, 0.1, passes=2, mixture_share=0.4)
    wiener_stage(cut_short, noisy, 0.1, passes=2, mixture_share=0.4)
    mixture = wiener_mix(noisy, pilot, 0.1).image
    assert torch.allclose(shared.refined, 0.4 * mixture + 0.6 * alone.refined, atol=1e-6)
    assert shared.refinement["mixture_share"] == 0.4
    # a fit the budget cut short keeps none of the mixture: the last pass alone
    assert torch.equal(cut_short.refined, alone.refined) and cut_short.refinement["mixture_share"] == 0.0
    with pytest.raises(ValueError, match="mixture_share"):
        replace(get_preset("fast"), mixture_share=1.0)
