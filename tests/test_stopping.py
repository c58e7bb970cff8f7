"""Stopping rules: fixed, oracle, and the windowed-variance detector."""
from __future__ import annotations

import pytest
import torch

from deepprior.fitting import FitConfig, Fixed, IterationState, Oracle, WindowedVariance, fit, make_rule
from deepprior.fitting.stopping import Discrepancy, clipped_noise_variance
from deepprior.nets import build_net


def _state(i: int, out: torch.Tensor, psnr: float | None = None) -> IterationState:
    return IterationState(i, 0.0, out, None, psnr=psnr)


def test_fixed_stops_at_its_count() -> None:
    rule = Fixed(4)
    reasons = [rule(_state(i, torch.zeros(1))) for i in range(1, 5)]
    assert reasons[:3] == [None] * 3 and reasons[3].startswith("fixed")
    with pytest.raises(ValueError):
        Fixed(0)


def test_oracle_keeps_the_best_output() -> None:
    rule = Oracle()
    for i, p in enumerate([10.0, 12.0, 15.0, 11.0], start=1):
        assert rule(_state(i, torch.full((1, 1, 2, 2), float(i)), psnr=p)) is None
    it, image = rule.selection()
    assert it == 3 and float(image.mean()) == 3.0
    with pytest.raises(ValueError, match="ground truth"):
        Oracle()(_state(1, torch.zeros(1)))


def test_windowed_variance_finds_the_calm_point_and_stops_after_patience() -> None:
    # outputs jitter a lot, then settle (steps 40-60), then drift apart again
    gen = torch.Generator().manual_seed(0)
    rule = WindowedVariance(window=10, patience=30)
    reason = None
    for i in range(1, 200):
        spread = 1.0 if i < 40 else (0.01 if i <= 60 else 0.05 * (i - 60))
        reason = rule(_state(i, torch.randn((1, 1, 8, 8), generator=gen) * spread))
        if reason:
            break
    assert reason is not None and reason.startswith("auto")
    detected, _ = rule.selection()
    assert 55 <= detected <= 65
    assert i == detected + 30


def test_auto_in_a_fit_returns_the_detected_output() -> None:
    torch.manual_seed(0)
    net = build_net("skip", 4, 3, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2))
    z = torch.rand(1, 4, 16, 16) * 0.1
    y = torch.rand(1, 3, 16, 16)
    rule = WindowedVariance(window=5, patience=10)
    seen = {}
    r = fit(net, z, y, config=FitConfig(iterations=400, lr=0.01), stopping=rule,
            callbacks=[lambda s: seen.__setitem__(s.iteration, s.output.clone())])
    assert r.stop_iteration <= r.iterations_run
    # no averaging in this recipe: the mean of the window's outputs at the detected point is returned
    window_mean = torch.stack([seen[i] for i in range(r.stop_iteration - 4, r.stop_iteration + 1)]).mean(0)
    assert torch.allclose(r.output, window_mean, atol=1e-6)
    assert r.stopping["rule"] == "windowed-variance" and r.stopping["detected_iteration"] == r.stop_iteration
    if r.iterations_run < 400:
        assert r.stop_reason.startswith("auto") and r.iterations_run == r.stop_iteration + 10


def test_make_rule_names() -> None:
    assert isinstance(make_rule("auto"), WindowedVariance)
    assert isinstance(make_rule("auto", sigma=0.1), Discrepancy)
    assert isinstance(make_rule("fixed", iterations=3), Fixed)
    assert isinstance(make_rule("oracle"), Oracle)
    with pytest.raises(ValueError, match="unknown stopping rule"):
        make_rule("never")


def test_cli_oracle_needs_a_ground_truth(tmp_path, capsys) -> None:
    import numpy as np

    from deepprior.cli import main
    from deepprior.imageio import write_image

    write_image(tmp_path / "in.png", np.zeros((16, 16, 3)))
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--stop", "oracle", "-q"]) == 2
    assert "ground truth" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()



def test_clipped_noise_variance_matches_sampling() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 32, 32, generator=gen)  # many pixels near black and white
    sigma = 0.2
    noise = torch.randn((400, 3, 32, 32), generator=gen) * sigma
    sampled = (image + noise).clamp(0, 1).var(dim=0).mean()
    assert clipped_noise_variance(image, sigma) == pytest.approx(float(sampled), rel=0.02)
    assert clipped_noise_variance(image, sigma) < sigma**2


def test_discrepancy_stops_when_the_fit_reaches_the_noise(clean_rgb) -> None:
    from deepprior.degrade import add_noise
    from deepprior.engine import run
    from deepprior.imageio import to_tensor
    from conftest import tiny_preset

    sigma = 0.1
    noisy = add_noise(clean_rgb[:32, :32], sigma, seed=0)
    result, _, _ = run(to_tensor(noisy), None, tiny_preset(1500, reg_noise_std=0.0), image_size=(32, 32),
                       seed=0, stop="auto", sigma=sigma)
    assert result.stop_reason.startswith("auto: fit reached the noise level")
    assert result.iterations_run < 1500
    assert result.stopping["rule"] == "discrepancy" and result.stopping["stopped_at"] == result.iterations_run
    # the data term, smoothed over the rule's window, has just fallen to the clipped noise variance
    fits = [row["loss"] for row in result.history[-result.stopping["window"]:]]
    assert sum(fits) / len(fits) <= result.stopping["threshold"] <= sigma**2
    with pytest.raises(ValueError):
        Discrepancy(sigma=0.0)


def test_default_rule_is_auto_and_iterations_mean_fixed(clean_rgb) -> None:
    from deepprior.engine import run
    from deepprior.imageio import to_tensor
    from conftest import tiny_preset

    y = to_tensor(clean_rgb[:16, :16])
    auto, _, _ = run(y, None, tiny_preset(5), image_size=(16, 16), seed=0, sigma=0.1)
    assert auto.stopping["rule"] == "discrepancy"
    fixed, _, _ = run(y, None, tiny_preset(50), image_size=(16, 16), seed=0, iterations=3)
    assert fixed.stopping == {"rule": "fixed", "iterations": 3} and fixed.iterations_run == 3


def test_callbacks_see_the_iteration_a_rule_stops_at(clean_rgb) -> None:
    from conftest import tiny_preset

    from deepprior.engine import run
    from deepprior.imageio import to_tensor

    seen: list[int] = []
    result, _, _ = run(to_tensor(clean_rgb[:16, :16]), None, tiny_preset(50), image_size=(16, 16), seed=0,
                       iterations=4, callbacks=[lambda s: seen.append(s.iteration)])
    assert seen == [1, 2, 3, 4] and result.stop_reason == "fixed: 4 iterations"


def test_plateau_stops_once_the_output_settles() -> None:
    # outputs converge geometrically towards a fixed image, with a little jitter
    gen = torch.Generator().manual_seed(0)
    target = torch.rand((1, 1, 8, 8), generator=gen)
    rule = WindowedVariance(window=10, patience=10_000, plateau=1e-6)
    reason = None
    for i in range(1, 2000):
        out = target * (1 - 0.99**i) + 1e-4 * torch.randn((1, 1, 8, 8), generator=gen)
        reason = rule(_state(i, out))
        if reason:
            break
    assert reason is not None and "settled" in reason
    stop, chosen = rule.selection()
    assert stop == i and i % 5 == 0 and 300 < i < 1500
    assert rule.drifts[-1][1] < 1e-6 <= rule.drifts[-2][1]
    assert torch.allclose(chosen, target, atol=0.05)


def test_replay_from_recorded_signals_matches_the_online_rule() -> None:
    gen = torch.Generator().manual_seed(1)
    target = torch.rand((1, 3, 8, 8), generator=gen)
    online = WindowedVariance(window=10, patience=200, plateau=2e-7)
    recorder = WindowedVariance(window=10, patience=10**9, plateau=1e-300)  # never stops, records everything
    stopped = None
    for i in range(1, 3000):
        out = target * (1 - 0.995**i) + 1e-3 * torch.randn((1, 3, 8, 8), generator=gen) * 0.999**i
        recorder(_state(i, out))
        if stopped is None and online(_state(i, out)):
            stopped = i
    assert stopped is not None
    replayed = WindowedVariance.replay(recorder.variances, recorder.drifts, window=10, patience=200, plateau=2e-7)
    assert replayed == (stopped, online.selection()[0])
