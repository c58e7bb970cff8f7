"""Noise-level estimation and its use by the denoise command."""
from __future__ import annotations


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
    assert "estimated noise sigma" in capsys.readouterr().out
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
