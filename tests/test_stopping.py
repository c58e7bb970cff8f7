"""Stopping rules: fixed, oracle, the windowed-variance detector and the discrepancy principle, on their own
and in real fits, checked against what the fit's history and outputs say when replayed by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_preset

from deepprior.fitting import FitConfig, Fixed, IterationState, Oracle, WindowedVariance, fit, make_rule
from deepprior.fitting.stopping import AUTO_PLATEAU, Discrepancy, clipped_noise_variance
from deepprior.jobs import Job, TaskOptions
from deepprior.measurement import Measurement
from deepprior.nets import build_net
from deepprior.pipeline import Settings, restore
from deepprior.tasks import job_from_arrays


def _state(i: int, out: torch.Tensor, psnr: float | None = None) -> IterationState:
    return IterationState(i, 0.0, out, None, psnr=psnr)


def _small_net(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    net = build_net("skip", 4, 3, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2))
    return net, torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed)) * 0.1


def _smooth(size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    return np.stack([0.2 + 0.2 * xx, 0.3 + 0.1 * yy, 0.25 + 0.1 * xx * yy], -1).astype(np.float32)


def test_fixed_stops_the_fit_at_its_count() -> None:
    rule = Fixed(4)
    reasons = [rule(_state(i, torch.zeros(1))) for i in range(1, 5)]
    assert reasons[:3] == [None] * 3 and reasons[3] == "fixed: 4 iterations"
    with pytest.raises(ValueError):
        Fixed(0)
    net, z = _small_net()
    seen: list[torch.Tensor] = []
    r = fit(net, z, torch.rand(1, 3, 16, 16), config=FitConfig(iterations=50), stopping=Fixed(4),
            callbacks=[lambda s: seen.append(s.output.clone())])
    assert r.iterations_run == r.stop_iteration == len(r.history) == len(seen) == 4
    assert r.stop_reason == "fixed: 4 iterations" and torch.equal(r.output, seen[-1])


def test_oracle_keeps_the_best_output() -> None:
    rule = Oracle()
    for i, p in enumerate([10.0, 12.0, 15.0, 11.0], start=1):
        assert rule(_state(i, torch.full((1, 1, 2, 2), float(i)), psnr=p)) is None
    it, image = rule.selection()
    assert it == 3 and float(image.mean()) == 3.0
    with pytest.raises(ValueError, match="ground truth"):
        Oracle()(_state(1, torch.zeros(1)))


def test_oracle_in_the_pipeline_returns_the_best_psnr_iteration_of_the_history() -> None:
    # a smooth image under strong noise: the PSNR rises as the fit finds the image, then falls as it fits the noise
    clean = _smooth()
    noisy = np.clip(clean + 0.2 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1).astype(np.float32)
    job = Job("restore", Measurement(noisy), ground_truth=clean)
    seen: dict[int, torch.Tensor] = {}
    out = restore(job, Settings(preset=tiny_preset(60, lr=0.03, reg_noise_std=0.0), stop="oracle", seed=0,
                                device="cpu", precision="fp32",
                                callbacks=(lambda s: seen.__setitem__(s.iteration, s.output.clone()),)))
    psnrs = [row["psnr"] for row in out.result.history]
    best = int(np.argmax(psnrs)) + 1
    assert out.result.iterations_run == 60 and 1 < best < 60  # a peak inside the run, not at an end
    assert out.result.stop_iteration == best == out.result.stopping["best_iteration"]
    assert torch.equal(out.result.output, seen[best])
    assert out.psnr == pytest.approx(max(psnrs), abs=1e-6) and out.psnr > psnrs[-1] + 0.5


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


def test_windowed_variance_without_patience_returns_the_latest_output() -> None:
    # a texture being learnt: the outputs vary ever more, so the least-variance output is the earliest
    gen = torch.Generator().manual_seed(0)
    calm = WindowedVariance(window=10, patience=30)
    settle = WindowedVariance(window=10, patience=None, plateau=1e-12)
    reasons: dict[str, str | None] = {"calm": None, "settle": None}
    for i in range(1, 121):
        out = torch.randn((1, 1, 8, 8), generator=gen) * 0.01 * i
        for name, rule in (("calm", calm), ("settle", settle)):
            if reasons[name] is None:
                reasons[name] = rule(_state(i, out))
    assert reasons["calm"] is not None and calm.selection()[0] == 10  # the first full window
    assert reasons["settle"] is None  # no plateau reached, no minimum looked for: it runs to the cap
    detected, chosen = settle.selection()
    assert detected == 120 and settle.describe()["patience"] is None
    assert chosen.shape == (1, 1, 8, 8)
    with pytest.raises(ValueError):
        WindowedVariance(patience=0)


def test_windowed_variance_in_a_fit_returns_the_minimum_variance_iteration() -> None:
    net, z = _small_net()
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    window, patience = 5, 10
    rule = WindowedVariance(window=window, patience=patience)
    seen: dict[int, torch.Tensor] = {}
    r = fit(net, z, y, config=FitConfig(iterations=400, lr=0.01), stopping=rule,
            callbacks=[lambda s: seen.__setitem__(s.iteration, s.output.clone())])
    # the variance of the last `window` raw outputs about their mean, per pixel, by hand in double precision
    by_hand = {}
    for t in range(window, r.iterations_run + 1):
        outs = torch.stack([seen[s].double() for s in range(t - window + 1, t + 1)])
        by_hand[t] = float(((outs - outs.mean(0)) ** 2).sum(dim=tuple(range(1, outs.ndim))).mean()) / outs[0].numel()
    assert [i for i, _ in rule.variances] == list(by_hand)
    assert np.allclose([v for _, v in rule.variances], list(by_hand.values()), rtol=1e-3, atol=1e-9)
    lowest, runner_up = sorted(by_hand, key=by_hand.get)[:2]
    if by_hand[runner_up] > (1 + 1e-3) * by_hand[lowest]:  # a clear minimum (rounding cannot swap the two)
        assert r.stop_iteration == lowest
    else:
        assert r.stop_iteration in (lowest, runner_up)
    assert r.stop_iteration == r.stopping["detected_iteration"] > window
    # it stopped once no lower variance came for `patience` steps, long before the cap
    assert r.stop_reason.startswith("auto: output variance lowest")
    assert r.iterations_run == r.stop_iteration + patience < 400
    lowest = r.stop_iteration
    # no averaging in this recipe: the mean of the window's outputs at the detected point is returned
    window_mean = torch.stack([seen[i] for i in range(lowest - window + 1, lowest + 1)]).mean(0)
    assert torch.allclose(r.output, window_mean, atol=1e-6)


def test_make_rule_names() -> None:
    assert isinstance(make_rule("auto"), WindowedVariance) and make_rule("auto").plateau == AUTO_PLATEAU
    rule = make_rule("auto", sigma=0.1, clipped=False, factor=1.1)
    assert isinstance(rule, Discrepancy) and (rule.sigma, rule.clipped, rule.factor) == (0.1, False, 1.1)
    assert isinstance(make_rule("auto", sigma=0.5 / 255), WindowedVariance)  # below a grey level: a clean image
    assert make_rule("auto").patience == 1000 and make_rule("auto", direct=False).patience is None
    assert isinstance(make_rule("fixed", iterations=3), Fixed)
    assert isinstance(make_rule("oracle"), Oracle)
    with pytest.raises(ValueError, match="unknown stopping rule"):
        make_rule("never")


def test_cli_oracle_needs_a_ground_truth(tmp_path, capsys) -> None:
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


def _noisy_job(size: int = 32, sigma: float = 0.1) -> tuple[Job, np.ndarray]:
    from deepprior.degrade import add_noise

    clean = _smooth(size)
    return job_from_arrays("denoise", {"image": add_noise(clean, sigma, seed=0)}, TaskOptions(sigma=sigma)), clean


def test_discrepancy_stops_at_the_first_iteration_the_windowed_fit_is_below_the_noise_level() -> None:
    sigma, window, factor = 0.1, 10, 1.3
    job, _ = _noisy_job(sigma=sigma)
    rule = Discrepancy(sigma, window=window, clipped=False, factor=factor)
    out = restore(job, Settings(preset=tiny_preset(1000, reg_noise_std=0.0), stop=rule, seed=0, device="cpu",
                                precision="fp32"))
    fits = [row.get("fit", row["loss"]) for row in out.result.history]
    levels = {t: sum(fits[t - window : t]) / window for t in range(window, len(fits) + 1)}
    first = min(t for t, level in levels.items() if level <= factor * sigma**2)
    assert out.result.iterations_run == first == out.result.stopping["stopped_at"] < 1000
    assert out.result.stop_reason == f"auto: fit reached the noise level ({sigma * 255:.1f} of 255) at iteration {first}"
    assert out.result.stopping["threshold"] == factor * sigma**2


def test_auto_stops_when_the_fit_reaches_the_clipped_noise_variance() -> None:
    sigma = 0.1
    job, _ = _noisy_job(sigma=sigma)
    returned: dict[int, torch.Tensor] = {}
    out = restore(job, Settings(preset=tiny_preset(1500, reg_noise_std=0.0), stop="auto", seed=0, device="cpu",
                                precision="fp32", callbacks=(lambda s: returned.__setitem__(s.iteration, (
                                    s.average if s.average is not None else s.output).clone()),)))
    result = out.result
    assert result.stopping["rule"] == "discrepancy" and result.stopping["clipped"]  # y is the image itself
    # replay the rule by hand: the data term's mean over the window against the clipped-noise variance of the
    # output, recomputed every `refresh` steps once the mean is below sigma^2
    window, factor = result.stopping["window"], result.stopping["factor"]
    fits = [row.get("fit", row["loss"]) for row in result.history]
    stop, threshold, computed_at, variance = None, None, None, 0.0
    for t in range(window, len(fits) + 1):
        level = sum(fits[t - window : t]) / window
        if level > factor * sigma**2:
            continue
        if computed_at is None or t - computed_at >= Discrepancy.refresh:
            variance, computed_at = clipped_noise_variance(returned[t], sigma), t
        if level <= factor * variance:
            stop, threshold = t, factor * variance
            break
    assert stop is not None and result.iterations_run == stop == result.stopping["stopped_at"] < 1500
    assert result.stop_reason.startswith("auto: fit reached the noise level")
    assert result.stopping["threshold"] == pytest.approx(threshold, rel=1e-12) and threshold < sigma**2
    assert torch.equal(result.output, returned[stop])
    with pytest.raises(ValueError):
        Discrepancy(sigma=0.0)


def test_default_rule_is_auto_and_iterations_mean_fixed(clean_rgb) -> None:
    job = job_from_arrays("denoise", {"image": clean_rgb[:16, :16]}, TaskOptions(sigma=0.1))
    auto = restore(job, Settings(preset=tiny_preset(5), seed=0, device="cpu"))
    assert auto.result.stopping["rule"] == "discrepancy" and auto.result.iterations_run == 5
    assert auto.result.stop_reason == "discrepancy: cap of 5 iterations reached"
    fixed = restore(job, Settings(preset=tiny_preset(50), seed=0, iterations=3, device="cpu"))
    assert fixed.result.stopping == {"rule": "fixed", "iterations": 3} and fixed.result.iterations_run == 3


def test_callbacks_see_the_iteration_a_rule_stops_at(clean_rgb) -> None:
    seen: list[int] = []
    out = restore(Job("restore", Measurement(clean_rgb[:16, :16])),
                  Settings(preset=tiny_preset(50), seed=0, iterations=4, device="cpu",
                           callbacks=(lambda s: seen.append(s.iteration),)))
    assert seen == [1, 2, 3, 4] and out.result.stop_reason == "fixed: 4 iterations"


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
