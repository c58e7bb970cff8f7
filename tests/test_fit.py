"""The fitting loop: reproducibility, averaging, backtracking, callbacks, history."""
from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from deepprior.fitting import FitConfig, fit
from deepprior.nets import build_net


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    net = build_net("skip", 4, 3, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2))
    z = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed)) * 0.1
    return net, z


def test_same_seed_same_output_and_different_seed_differs() -> None:
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    config = FitConfig(iterations=5, reg_noise_std=0.05, ema_weight=0.9)
    outs = []
    for seed in (0, 0, 1):
        net, z = _setup(seed)
        outs.append(fit(net, z, y, config=config, generator=torch.Generator().manual_seed(seed)).output)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def _smooth_pair(size: int = 16, sigma: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth colour image and a noisy copy of it, ``(1, 3, size, size)``."""
    t = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    clean = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * xx * yy])[None]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(7))
    return clean, (clean + sigma * noise).clamp(0, 1)


def test_loss_decreases_and_history_is_complete() -> None:
    clean, _ = _smooth_pair()
    net, z = _setup()
    result = fit(net, z, clean, config=FitConfig(iterations=40, lr=0.01))
    assert result.iterations_run == 40 and result.stop_reason == "iterations" and result.stop_iteration == 40
    assert [row["iteration"] for row in result.history] == list(range(1, 41))
    losses = result.losses
    # a fixed smooth target is fitted: the loss falls to a small fraction of where it started...
    assert losses[-1] < 0.2 * losses[0]
    # ...and keeps falling: each block of 10 steps ends lower on average than the one before
    blocks = [sum(losses[i : i + 10]) / 10 for i in range(0, 40, 10)]
    assert all(later < earlier for earlier, later in pairwise(blocks))
    # the last loss is the data term of the returned output (computed before that step's update)
    assert result.psnr is None and "psnr" not in result.history[-1]
    assert result.parameters == sum(p.numel() for p in net.parameters())
    assert result.seconds > 0


def test_psnr_is_that_of_the_returned_output_against_the_ground_truth() -> None:
    from deepprior.imageio import from_tensor
    from deepprior.metrics import psnr

    clean, noisy = _smooth_pair()
    net, z = _setup()
    result = fit(net, z, noisy, config=FitConfig(iterations=20, lr=0.01, ema_weight=0.9), ground_truth=clean)
    gt = clean[0].permute(1, 2, 0).numpy()

    def measured(image: torch.Tensor) -> float:
        return psnr(gt, image[0].permute(1, 2, 0).numpy())

    # the fit is against the noisy image, the PSNR against the clean one
    assert result.psnr == pytest.approx(measured(result.output), abs=1e-9)
    assert result.output is result.average and result.history[-1]["psnr"] == result.psnr
    assert result.history[-1]["psnr_raw"] == pytest.approx(measured(result.image), abs=1e-9)
    assert result.history[-1]["psnr_average"] != result.history[-1]["psnr_raw"]
    assert result.psnr == pytest.approx(psnr(gt, from_tensor(result.output)), abs=1e-6)  # what an interface reports
    assert result.psnr != pytest.approx(psnr(gt, noisy[0].permute(1, 2, 0).numpy()), abs=0.1)


def test_averaging_original_and_debiased() -> None:
    from deepprior.fitting.averaging import OutputAverage

    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    seen: list[torch.Tensor] = []
    net, z = _setup()
    r = fit(net, z, y, config=FitConfig(iterations=3, ema_weight=0.9),
            callbacks=[lambda s: seen.append(s.output.clone())])
    # the original starts the average at the first output
    expected = seen[0] * 0.9**2 + seen[1] * 0.1 * 0.9 + seen[2] * 0.1
    assert torch.allclose(r.average, expected, atol=1e-6)
    assert r.output is r.average and torch.equal(r.image, seen[-1])
    assert float((r.output - seen[-1]).abs().max()) > 1e-4  # the average is not the last step
    by_hand = OutputAverage(0.9)
    for out in seen:
        by_hand.update(out)
    assert torch.allclose(by_hand.value, r.output, atol=1e-7)
    seen.clear()
    net, z = _setup()
    r = fit(net, z, y, config=FitConfig(iterations=3, ema_weight=0.9, ema_debias=True),
            callbacks=[lambda s: seen.append(s.output.clone())])
    weights = torch.tensor([0.1 * 0.81, 0.1 * 0.9, 0.1]) / (1 - 0.9**3)
    expected = sum(w * o for w, o in zip(weights, seen))
    assert torch.allclose(r.average, expected, atol=1e-6)
    by_hand = OutputAverage(0.9, debias=True)
    for out in seen:
        by_hand.update(out)
    assert torch.allclose(by_hand.value, r.output, atol=1e-7)
    assert float((r.output - seen[-1]).abs().max()) > 1e-4


def test_backtracking_restores_weights_after_a_collapse() -> None:
    y = torch.rand(1, 3, 16, 16)
    # a huge learning rate makes the fit blow up; backtracking must catch it
    net, z = _setup()
    r = fit(net, z, y, config=FitConfig(iterations=30, lr=5.0, backtrack_db=5.0))
    assert r.backtracks >= 1
    worst = max(row["loss"] for row in r.history)
    assert worst > 3 * r.history[0]["loss"]  # a collapse was seen...
    # ...but the returned image comes from weights that fit well
    assert float(torch.mean((r.output - y) ** 2)) <= 1.01 * min(row["loss"] for row in r.history)
    net, z = _setup()
    off = fit(net, z, y, config=FitConfig(iterations=30, lr=5.0, backtrack_db=None))
    assert off.backtracks == 0


def test_a_callback_can_stop_the_loop_and_name_the_reason() -> None:
    net, z = _setup()
    r = fit(net, z, torch.rand(1, 3, 16, 16), config=FitConfig(iterations=50),
            callbacks=[lambda s: "plateau" if s.iteration == 7 else None])
    assert r.iterations_run == 7 and r.stop_reason == "plateau" and len(r.history) == 7


def test_interrupt_returns_what_was_done() -> None:
    def interrupt(state):
        if state.iteration == 4:
            raise KeyboardInterrupt

    net, z = _setup()
    r = fit(net, z, torch.rand(1, 3, 16, 16), config=FitConfig(iterations=50), callbacks=[interrupt])
    assert r.stop_reason == "interrupted" and r.iterations_run == 4 and r.output.shape == (1, 3, 16, 16)


def test_frame_crops_the_canvas_for_the_operator() -> None:
    net, z = _setup()
    y = torch.rand(1, 3, 10, 13)
    r = fit(net, z, y, config=FitConfig(iterations=2), frame=(3, 1, 10, 13))
    assert r.output.shape == (1, 3, 10, 13)


def test_param_noise_and_tv_change_the_result() -> None:
    y = torch.rand(1, 3, 16, 16)
    outs = []
    for config in (FitConfig(iterations=5), FitConfig(iterations=5, param_noise=0.02),
                   FitConfig(iterations=5, tv_weight=1.0)):
        net, z = _setup()
        outs.append(fit(net, z, y, config=config, generator=torch.Generator().manual_seed(0)).output)
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


@pytest.mark.parametrize(
    "bad", [{"iterations": 0}, {"lr": 0.0}, {"reg_noise_std": -1.0}, {"ema_weight": 1.0}, {"tv_weight": -0.1}]
)
def test_absurd_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        FitConfig(**bad)
