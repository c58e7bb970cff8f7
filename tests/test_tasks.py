"""End to end through the NumPy API: each task improves on its corrupted
input, any size comes back the same size, and seeds make runs reproducible."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import deepprior
from deepprior.degrade import add_noise, blur, downscale, drop_pixels
from deepprior.metrics import psnr
from deepprior.operators import Compose, Mask

from conftest import tiny_preset


def test_denoise_with_the_paper_preset_gains_3db(clean_rgb: np.ndarray) -> None:
    noisy = add_noise(clean_rgb, 25 / 255, seed=1)
    out, result = deepprior.denoise(noisy, sigma=25 / 255, iterations=200, seed=0, ground_truth=clean_rgb,
                                    preset="denoise", return_result=True)
    assert out.shape == clean_rgb.shape and out.dtype == np.float32
    assert result.parameters == 2_217_831 and result.refinement == {}  # the paper's recipe, nothing added
    assert psnr(clean_rgb, out) >= psnr(clean_rgb, noisy) + 3.0
    assert result.psnr == pytest.approx(psnr(clean_rgb, out), abs=0.05)


def test_default_denoise_is_the_fast_recipe_and_its_wiener_stage_helps(clean_rgb: np.ndarray) -> None:
    noisy = add_noise(clean_rgb, 25 / 255, seed=1)
    out, result = deepprior.denoise(noisy, sigma=25 / 255, iterations=200, seed=0, ground_truth=clean_rgb,
                                    return_result=True)
    assert result.parameters < 2_217_831 // 2 and result.refinement["method"] == "wiener"
    assert psnr(clean_rgb, out) >= psnr(clean_rgb, noisy) + 3.0
    assert psnr(clean_rgb, out) > result.psnr  # the refined output beats the network's own


def test_inpaint_fills_dropped_pixels(clean_rgb: np.ndarray) -> None:
    damaged, mask = drop_pixels(clean_rgb, 0.5, seed=0)
    out = deepprior.inpaint(damaged, mask, preset=tiny_preset(150), seed=0)
    assert psnr(clean_rgb, out) > psnr(clean_rgb, damaged) + 10


def test_super_resolution_beats_pixel_replication(clean_rgb: np.ndarray) -> None:
    small = downscale(clean_rgb, 4)
    out = deepprior.super_resolve(small, 4, preset=tiny_preset(200), seed=0)
    assert out.shape == clean_rgb.shape
    replicated = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    assert psnr(clean_rgb, out) > psnr(clean_rgb, replicated) + 0.3


def test_deblur_sharpens(clean_grey: np.ndarray) -> None:
    blurred = add_noise(blur(clean_grey[..., None], 2.0), 1 / 255, seed=0)[..., 0]
    out = deepprior.deblur(blurred, 2.0, preset=tiny_preset(500, ema_weight=0.99, ema_debias=True), seed=0)
    assert out.shape == clean_grey.shape
    assert psnr(clean_grey, out) > psnr(clean_grey, blurred) + 1.0


def test_dejpeg_removes_blocking(clean_rgb: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray((clean_rgb * 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=5)
    jpeg = np.asarray(Image.open(buffer)).astype(np.float32) / 255
    out = deepprior.dejpeg(jpeg, preset=tiny_preset(300, ema_weight=0.99, ema_debias=True), seed=0)
    assert psnr(clean_rgb, out) > psnr(clean_rgb, jpeg)


def test_flash_no_flash_follows_the_no_flash_image(clean_rgb: np.ndarray) -> None:
    flash = np.clip(clean_rgb * 1.4 + 0.1, 0, 1)
    no_flash = add_noise(clean_rgb * 0.6, 10 / 255, seed=0)
    preset = deepprior.get_preset("flash")
    out = deepprior.flash_no_flash(flash, no_flash, iterations=60, seed=0)
    assert out.shape == no_flash.shape
    assert psnr(no_flash, out) > psnr(no_flash, flash)
    assert preset.input_kind == "image"


def test_general_restore_with_a_composed_user_operator(clean_rgb: np.ndarray) -> None:
    import torch

    _, mask = drop_pixels(clean_rgb, 0.5, seed=2)
    op = Compose(lambda x: 0.5 * x, Mask(mask))  # a darkening the user wrote, then a mask
    with torch.no_grad():
        y = op(torch.from_numpy(clean_rgb).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    out = deepprior.restore(y, op, preset=tiny_preset(150), seed=0)
    assert out.shape == clean_rgb.shape
    assert psnr(clean_rgb, out) > psnr(clean_rgb, 2 * y) + 10


@pytest.mark.parametrize("channel_axis", [None, -1])
def test_grey_inpainting_with_or_without_a_channel_axis(channel_axis: int | None) -> None:
    rng = np.random.default_rng(0)
    grey = rng.random((24, 24)).astype(np.float32)
    out = deepprior.inpaint(grey, rng.random((24, 24)) > 0.5, channel_axis=channel_axis, preset=tiny_preset(2),
                            seed=0)
    assert out.shape == (24, 24)


@pytest.mark.parametrize("task", ["denoise", "inpaint", "superres", "deblur"])
def test_odd_sizes_come_back_the_same_size(task: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((37, 53, 3)).astype(np.float32)
    preset = tiny_preset(2)
    if task == "denoise":
        out = deepprior.denoise(image, preset=preset, seed=0)
    elif task == "inpaint":
        out = deepprior.inpaint(image, rng.random((37, 53)) > 0.5, preset=preset, seed=0)
    elif task == "superres":
        out = deepprior.super_resolve(image, 3, preset=preset, seed=0)
        assert out.shape == (111, 159, 3)
        return
    else:
        out = deepprior.deblur(image, 1.0, preset=preset, seed=0)
    assert out.shape == (37, 53, 3)


def test_channel_axis_and_grey(clean_grey: np.ndarray) -> None:
    out = deepprior.denoise(clean_grey, preset=tiny_preset(2), seed=0)
    assert out.shape == clean_grey.shape
    first = np.stack([clean_grey] * 3)  # (C, H, W)
    out = deepprior.denoise(first, preset=tiny_preset(2), seed=0, channel_axis=0)
    assert out.shape == first.shape
    small = deepprior.super_resolve(first[:, :24, :24], 2, preset=tiny_preset(2), seed=0, channel_axis=0)
    assert small.shape == (3, 48, 48)
    assert deepprior.denoise((clean_grey * 255).astype(np.uint8), preset=tiny_preset(2), seed=0).max() <= 1.0


def test_same_seed_same_result(clean_rgb: np.ndarray) -> None:
    a = deepprior.denoise(clean_rgb, preset=tiny_preset(5), seed=3)
    b = deepprior.denoise(clean_rgb, preset=tiny_preset(5), seed=3)
    c = deepprior.denoise(clean_rgb, preset=tiny_preset(5), seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_api_rejects_bad_arguments(clean_rgb: np.ndarray) -> None:
    with pytest.raises(ValueError, match="sigma"):
        deepprior.denoise(clean_rgb, sigma=-0.1)
    with pytest.raises(ValueError, match="scale"):
        deepprior.denoise(clean_rgb, sigma=25)
    with pytest.raises(ValueError, match="scale"):
        deepprior.super_resolve(clean_rgb, 1)
    with pytest.raises(ValueError, match="mask"):
        deepprior.inpaint(clean_rgb, np.ones((10, 10)))
    with pytest.raises(ValueError, match="preset"):
        deepprior.denoise(clean_rgb, preset="nope")
    with pytest.raises(ValueError, match="iterations"):
        deepprior.denoise(clean_rgb, iterations=0)
    with pytest.raises(ValueError, match="NaN"):
        deepprior.denoise(np.full((8, 8), np.nan))


def test_sure_loss_denoises_without_a_clean_image(clean_rgb: np.ndarray) -> None:
    from dataclasses import replace

    noisy = add_noise(clean_rgb, 25 / 255, seed=1)
    base = tiny_preset(100)
    preset = replace(base, input_kind="measurement",
                     fit=replace(base.fit, loss="sure", reg_noise_std=0.0, ema_weight=0.99, ema_debias=True))
    out, result = deepprior.denoise(noisy, sigma=25 / 255, preset=preset, seed=0, return_result=True)
    assert psnr(clean_rgb, out) > psnr(clean_rgb, noisy) + 3
    # SURE estimates the error to the clean image: about MSE(clean, output) once the fit settles
    assert result.history[-1]["loss"] < float(np.mean((noisy - clean_rgb) ** 2))
    with pytest.raises(ValueError, match="noise level"):
        deepprior.restore(noisy, None, preset=preset, iterations=1)


def test_the_defaults_pick_their_recipe_from_the_job() -> None:
    from deepprior.jobs import TaskOptions
    from deepprior.pipeline import Settings, plan
    from deepprior.tasks import job_from_arrays

    image = np.full((64, 64, 3), 0.5, np.float32)
    scattered = (np.random.default_rng(0).random((64, 64)) < 0.5).astype(np.float32)
    hole = np.ones((64, 64), np.float32)
    hole[16:48, 16:48] = 0
    picked = {}
    for name, task, arrays, options in [
        ("x4", "superres", {"image": image[:16, :16]}, TaskOptions(scale=4)),
        ("x8", "superres", {"image": image[:8, :8]}, TaskOptions(scale=8)),
        ("scattered", "inpaint", {"image": image, "mask": scattered[..., None]}, TaskOptions()),
        ("hole", "inpaint", {"image": image, "mask": hole[..., None]}, TaskOptions()),
    ]:
        picked[name] = plan(job_from_arrays(task, arrays, options), Settings(device="cpu")).preset.name
    assert picked == {"x4": "fast-superres", "x8": "fast-superres-x8", "scattered": "fast-inpaint",
                      "hole": "inpaint-deep"}


def test_default_super_resolution_explains_its_input_exactly(clean_rgb: np.ndarray) -> None:
    import torch

    from deepprior.operators import Downsample

    small = downscale(clean_rgb, 4)
    out, result = deepprior.super_resolve(small, 4, iterations=30, seed=0, return_result=True)
    assert result.refinement["method"] == "project"
    assert result.refinement["data_mse_after"] < result.refinement["data_mse_before"] / 10
    again = Downsample(4)(torch.from_numpy(out).permute(2, 0, 1)[None]).squeeze(0).permute(1, 2, 0).numpy()
    assert psnr(small, again) > 40
