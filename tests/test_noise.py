"""Noise-level estimation and its use by the denoise command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def test_noise_estimate_is_close_and_picks_the_recipe(tmp_path, capsys) -> None:
    import json

    import numpy as np
    from skimage import data

    from deepprior.cli import main
    from deepprior.degrade import add_noise
    from deepprior.imageio import write_image
    from deepprior.noise import estimate_sigma

    clean = data.astronaut()[:256, :256].astype(np.float32) / 255
    for sigma in (15, 25, 50):
        estimate = estimate_sigma(add_noise(clean, sigma / 255, seed=0)) * 255
        assert abs(estimate - sigma) < 0.1 * sigma
    write_image(tmp_path / "noisy.png", add_noise(clean[:64, :64], 50 / 255, seed=0))
    assert main(["denoise", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "o.png"), "--iterations", "1",
                 "--record", str(tmp_path / "r.json")]) == 0
    assert "noise: Gaussian, sigma" in capsys.readouterr().out  # the image decided: one line says so
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["noise"]["source"] == "estimated" and record["preset"] == "denoise-50"
    write_image(tmp_path / "noisy25.png", add_noise(clean[:64, :64], 25 / 255, seed=0))
    assert main(["denoise", str(tmp_path / "noisy25.png"), "-o", str(tmp_path / "o25.png"), "--iterations", "1",
                 "--record", str(tmp_path / "r25.json")]) == 0
    assert json.loads((tmp_path / "r25.json").read_text())["preset"] == "fast"  # the default below sigma 40


def test_fast_preset_is_the_narrow_network() -> None:
    """``fast`` keeps the paper's layers and skips but narrows the fine scales, where the work is."""
    from deepprior.nets import build_net
    from deepprior.presets import PRESETS, default_denoise_preset

    fast, paper = PRESETS["fast"], PRESETS["denoise"]
    assert fast.net_options["channels_down"] == (16, 32, 64, 128, 128)
    count = lambda p: sum(t.numel() for t in build_net(p.net, p.input_channels, 3, **p.net_options).parameters())
    assert count(paper) == 2_217_831 and count(fast) < count(paper) // 2
    assert default_denoise_preset(25) == "fast" and default_denoise_preset(50) == "denoise-50"


def test_salt_and_pepper_is_detected_and_restored_as_missing_pixels(tmp_path, capsys) -> None:
    import json

    import numpy as np
    from skimage import data

    from deepprior.cli import main
    from deepprior.degrade import add_impulse, add_noise
    from deepprior.imageio import write_image
    from deepprior.metrics import psnr

    clean = data.astronaut()[100:164, 180:244].astype(np.float32) / 255
    noisy = add_impulse(clean, 0.2, seed=0)
    write_image(tmp_path / "specks.png", noisy)
    assert main(["denoise", str(tmp_path / "specks.png"), "-o", str(tmp_path / "o.png"), "--iterations", "60",
                 "--record", str(tmp_path / "r.json")]) == 0
    assert "noise: salt-and-pepper" in capsys.readouterr().out
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["noise"]["model"] == "impulse" and record["noise"]["source"] == "detected"
    assert abs(record["noise"]["fraction"] - 0.2) < 0.02 and record["preset"] == "fast-inpaint"
    from deepprior.imageio import read_image

    restored = read_image(tmp_path / "o.png").pixels
    kept = (noisy > 0.5 / 255) & (noisy < 1 - 0.5 / 255)
    assert np.array_equal(np.round(restored[kept] * 255), np.round(noisy[kept] * 255))  # the exact values stay
    assert psnr(clean, restored) > psnr(clean, noisy) + 10

    # Gaussian noise is not taken for impulses, and the user can say what the noise is
    write_image(tmp_path / "gauss.png", add_noise(clean, 25 / 255, seed=0))
    assert main(["denoise", str(tmp_path / "gauss.png"), "-o", str(tmp_path / "g.png"), "--iterations", "1", "-q",
                 "--record", str(tmp_path / "g.json")]) == 0
    assert json.loads((tmp_path / "g.json").read_text())["noise"]["model"] == "gaussian"
    assert main(["denoise", str(tmp_path / "specks.png"), "-o", str(tmp_path / "n.png"), "--iterations", "1", "-q",
                 "--noise", "gaussian", "--record", str(tmp_path / "n.json")]) == 0
    assert json.loads((tmp_path / "n.json").read_text())["noise"]["model"] == "gaussian"
    assert main(["denoise", str(tmp_path / "gauss.png"), "-o", str(tmp_path / "i.png"), "--iterations", "1", "-q",
                 "--noise", "impulse", "--record", str(tmp_path / "i.json")]) == 0
    assert json.loads((tmp_path / "i.json").read_text())["noise"]["source"] == "given"


def test_anscombe_stabilises_poisson_noise_and_its_inverse_is_unbiased() -> None:
    from deepprior.degrade import add_poisson
    from deepprior.stabilise import Anscombe

    vst = Anscombe(30.0)
    for level in (0.1, 0.5):  # the stabilised noise has the same level at every brightness
        transformed = vst.forward(add_poisson(np.full((200, 200, 1), level), 30.0, seed=1))
        assert abs(transformed.std() / vst.sigma - 1) < 0.1
        assert abs(float(vst.inverse(np.array(transformed.mean()))) - level) < 0.005  # the mean comes back
    with pytest.raises(ValueError, match="peak"):
        Anscombe(0.0)


def test_poisson_noise_is_restored_through_the_stabilised_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from skimage import data

    from deepprior.cli import main
    from deepprior.degrade import add_poisson
    from deepprior.imageio import read_image, write_image
    from deepprior.metrics import psnr

    clean = data.camera()[100:164, 100:164, None].astype(np.float32) / 255
    noisy = add_poisson(clean, 30.0, seed=0)
    write_image(tmp_path / "counts.png", noisy)
    assert main(["denoise", str(tmp_path / "counts.png"), "-o", str(tmp_path / "o.png"), "--noise", "poisson",
                 "--peak", "30", "--iterations", "300", "-q", "--record", str(tmp_path / "r.json")]) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["noise"]["model"] == "poisson" and record["noise"]["peak"] == 30.0
    assert record["refinement"]["stabilised"]["inverse"] == "exact unbiased"
    restored = read_image(tmp_path / "o.png").pixels
    assert restored.shape == clean.shape and psnr(clean, restored) > psnr(clean, noisy) + 4


@pytest.mark.parametrize("peak", [3.0, 10.0, 100.0])
def test_the_stabilised_level_is_the_one_the_image_has(peak: float) -> None:
    """Few counts and white clipping leave less noise after the transform than its nominal level; the level
    measured on the image follows the real residual (a little above it, never far below: a stop aimed below the
    real residual would never come), so the stop waits for the fit to reach it."""
    from deepprior.degrade import add_poisson
    from deepprior.stabilise import Anscombe

    y, x = np.mgrid[0:96, 0:96] / 96
    clean = np.stack([0.55 + 0.45 * x, 0.2 + 0.8 * y, 0.9 * np.ones_like(x)], axis=-1).astype(np.float32)
    vst = Anscombe(peak)
    noisy = add_poisson(clean, peak, seed=1)
    real = float(np.sqrt(np.mean((vst.forward(noisy) - vst.expected(clean)) ** 2)))
    assert 0.98 * real <= vst.residual_sigma(noisy) <= 1.08 * real
    if peak <= 10:
        assert real < 0.93 * vst.sigma  # the nominal level would stop the fit too early


def test_salt_and_pepper_on_a_textured_photo_is_still_detected() -> None:
    """A photo with fine texture has a few per cent of values that stand out by themselves; with half its values
    replaced, the impulses (far more) still decide. Gaussian noise that clips as often to black or white is not
    taken for it: it makes the other values stand out more than the impulses."""
    from deepprior.degrade import add_impulse, add_noise
    from deepprior.impulse import looks_like_salt_and_pepper, standing_out

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:96, 0:96] / 96
    texture = 0.5 + 0.25 * np.sin(40 * x + 7 * np.sin(9 * y)) + 0.12 * rng.standard_normal((96, 96))
    photo = np.clip(np.stack([texture, texture * 0.8 + 0.1, 1 - texture], axis=-1), 0, 1).astype(np.float32)
    noisy = add_impulse(photo, 0.5, seed=0)
    assert standing_out(noisy)[2] > 0.04  # beyond the plain bound on the other values
    assert looks_like_salt_and_pepper(noisy) == pytest.approx(0.5, abs=0.05)
    for sigma in (30, 50, 75):
        assert looks_like_salt_and_pepper(add_noise(photo, sigma / 255, seed=0)) is None


def _camera_like_jpeg(folder: Path, quality: int = 75) -> np.ndarray:
    """``folder/shot.jpg``: a photo crop with correlated noise (sigma 5 of 255, spread over about a pixel) saved by
    ``deepprior degrade --jpeg`` as a camera saves, whose quantisation removes most of the noise inside flat
    blocks. Returns the noisy pixels before the JPEG."""
    from skimage import data

    from deepprior.cli import main
    from deepprior.degrade import add_noise
    from deepprior.imageio import write_image

    clean = data.astronaut()[100:196, 180:276].astype(np.float32) / 255
    write_image(folder / "clean.png", clean)
    assert main(["degrade", str(folder / "clean.png"), "-o", str(folder / "shot.jpg"), "--noise", "5",
                 "--correlation", "1", "--jpeg", str(quality), "--seed", "0", "-q"]) == 0
    return add_noise(clean, 5 / 255, seed=0, correlation=1.0)


def test_camera_jpeg_noise_is_detected_and_fitted_for_a_fixed_length(tmp_path: Path, capsys) -> None:
    from deepprior.cli import main
    from deepprior.imageio import write_image
    from deepprior.noise import CAMERA_LEVEL

    noisy = _camera_like_jpeg(tmp_path)
    assert main(["denoise", str(tmp_path / "shot.jpg"), "-o", str(tmp_path / "o.png"), "--iterations", "20",
                 "--record", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "noise: camera JPEG, quality 75 (detected: white-noise estimate" in out  # the one line says what it took
    record = json.loads((tmp_path / "r.json").read_text())
    noise = record["noise"]
    assert noise["model"] == "camera-jpeg" and noise["source"] == "detected" and noise["jpeg_quality"] == 75
    assert noise["white_estimate_255"] < 1 and noise["level_255"] == round(CAMERA_LEVEL * 255, 3)
    assert record["preset"] == "fast-camera"
    assert record["refinement"]["sigma"] == round(CAMERA_LEVEL, 6)
    assert record["refinement"]["mixture_share"] == 0.5  # the fixed-length fit ran its whole course

    # the same pixels in a PNG hold no JPEG tables: Gaussian noise of the estimated level, as before
    write_image(tmp_path / "shot.png", noisy)
    assert main(["denoise", str(tmp_path / "shot.png"), "-o", str(tmp_path / "p.png"), "--iterations", "1", "-q",
                 "--record", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["noise"]["model"] == "gaussian"
    # a user can name the model for any file, and its level; a given sigma with auto means Gaussian noise
    assert main(["denoise", str(tmp_path / "shot.png"), "-o", str(tmp_path / "c.png"), "--iterations", "1", "-q",
                 "--noise", "camera", "--sigma", "10", "--record", str(tmp_path / "c.json")]) == 0
    given = json.loads((tmp_path / "c.json").read_text())["noise"]
    assert given["model"] == "camera-jpeg" and given["source"] == "given" and given["level_255"] == 10
    assert given["jpeg_quality"] is None
    assert main(["denoise", str(tmp_path / "shot.jpg"), "-o", str(tmp_path / "s.png"), "--iterations", "1", "-q",
                 "--sigma", "5", "--record", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["noise"]["model"] == "gaussian"


def test_camera_noise_runs_the_recipe_length_and_keeps_the_mixture_unless_a_budget_cut_it() -> None:
    """No discrepancy stop for camera noise: the fit runs the recipe's steps; the Wiener mixture's share stays
    when it ran them all, and goes when a time budget (the recipe's pixel budget) shortened the fit."""
    from dataclasses import replace

    from deepprior.jobs import TaskOptions
    from deepprior.pipeline import Settings, restore
    from deepprior.presets import MIN_BUDGET_STEPS, PRESETS
    from deepprior.tasks import job_from_arrays

    noisy = np.random.default_rng(0).uniform(0.3, 0.7, (32, 32, 3)).astype(np.float32)
    job = job_from_arrays("denoise", {"image": noisy}, TaskOptions(noise="camera"))
    assert job.measurement.noise.source == "given"
    short = replace(PRESETS["fast-camera"], fit=replace(PRESETS["fast-camera"].fit, iterations=40))
    whole = restore(job, Settings(preset=short, seed=0, progress=False)).result
    assert whole.iterations_run == 40 and whole.stopping["rule"] == "fixed"
    assert whole.refinement["mixture_share"] == 0.5
    cut = replace(short, fit=replace(short.fit, iterations=MIN_BUDGET_STEPS + 10), pixel_steps=1.0)
    shortened = restore(job, Settings(preset=cut, seed=0, progress=False)).result
    assert shortened.iterations_run == MIN_BUDGET_STEPS and shortened.refinement["mixture_share"] == 0.0
    with pytest.raises(ValueError, match="level"):
        from deepprior.noise import CameraNoise

        CameraNoise(0.0)
