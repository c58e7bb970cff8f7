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
    assert record["options"]["sigma_source"] == "estimated" and record["preset"] == "denoise-50"
