"""The engine's pieces and the pipeline around them: every generator kind on a padded canvas, the memory
estimate against a measured step, stopping that never looks at the ground truth, checks made before any
fitting, the choice of stopping rule, and the operators' adjoints."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_preset

from deepprior import engine, pipeline
from deepprior.fitting import Discrepancy, FitConfig, Fixed, Oracle, WindowedVariance
from deepprior.fitting.stopping import AUTO_PLATEAU
from deepprior.jobs import InputError, Job, TaskOptions
from deepprior.measurement import Measurement
from deepprior.memory import BACKWARD_FACTOR, WORKSPACE_BYTES
from deepprior.nets import count_parameters
from deepprior.noise import GaussianNoise, Noiseless
from deepprior.operators import Blur, Compose, Downsample, Identity, Mask
from deepprior.pipeline import Settings
from deepprior.presets import Preset, get_preset
from deepprior.tasks import job_from_arrays

CPU = torch.device("cpu")


def _smooth(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    yy, xx = yy / (height - 1), xx / (width - 1)
    return np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * np.sin(3 * xx + 2 * yy)], -1).astype(np.float32)


def _preset(net: str, net_options: dict, input_channels: int = 4) -> Preset:
    return Preset(name=f"tiny-{net}", task="test", summary="tiny", reproduces="nothing", net=net,
                  net_options=net_options, input_channels=input_channels,
                  fit=FitConfig(iterations=3, lr=0.01, reg_noise_std=1 / 30))


# each kind, tiny, and the canvas a 32x40 image needs in it: (height, width) of the network's output
GENERATORS = {
    "skip": (_preset("skip", {"channels_down": (4,) * 5, "channels_up": (4,) * 5, "channels_skip": (1,) * 5,
                              "upsample_mode": "bilinear", "pad": "reflection"}), (64, 64)),  # multiple 32, min 64
    "unet": (_preset("unet", {"feature_scale": 16, "upsample_mode": "bilinear"}), (32, 48)),  # multiple 16
    "resnet": (_preset("resnet", {"blocks": 1, "channels": 8}), (32, 40)),  # any size
    "deep_decoder": (_preset("deep_decoder", {"channels": 8, "layers": 6}), (64, 64)),  # 2x2 input, multiple 32
}


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_pipeline_runs_every_generator_kind_on_a_padded_canvas(kind: str) -> None:
    preset, canvas = GENERATORS[kind]
    image = _smooth(32, 40)
    setup = engine.set_up(preset, 3, (32, 40), 0, CPU)
    with torch.no_grad():
        assert tuple(setup.net(setup.net_input).shape[-2:]) == canvas
    top, left, height, width = setup.frame
    assert (height, width) == (32, 40) and top + height <= canvas[0] and left + width <= canvas[1]
    out = pipeline.restore(Job("restore", Measurement(image)),
                           Settings(preset=preset, iterations=3, seed=0, device="cpu", precision="fp32"))
    assert out.preset.net == kind
    assert out.image.shape == (32, 40, 3) and out.image.dtype == np.float32
    assert np.isfinite(out.image).all() and out.image.min() >= 0 and out.image.max() <= 1
    assert out.image.std() > 0  # an image, not a constant
    assert out.result.parameters == count_parameters(engine.build_generator(preset, 3)[0]) > 0
    assert len(out.result.history) == 3 and out.result.iterations_run == 3
    assert all(np.isfinite(row["loss"]) for row in out.result.history)


def test_memory_estimate_scales_with_pixels_from_its_probe() -> None:
    preset = tiny_preset(1)
    sizes = (64, 128, 256)
    estimates = [engine.estimate_memory(preset, (s, s), 3) for s in sizes]
    assert estimates[0] < estimates[1] < estimates[2]
    # fixed costs on top of a per-pixel cost: each 4x more pixels adds 4x what the last 4x added
    assert estimates[2] - estimates[1] == pytest.approx(4 * (estimates[1] - estimates[0]), rel=1e-3)
    # the per-pixel part, measured on a 64-pixel probe, is what the layers really produce at 128 pixels
    net, in_channels = engine.build_generator(preset, 3)
    produced = 0

    def count(_module: torch.nn.Module, _inputs: object, output: object) -> None:
        nonlocal produced
        if isinstance(output, torch.Tensor):
            produced += output.numel() * output.element_size()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        net(torch.zeros(1, in_channels, 128, 128))
    for hook in hooks:
        hook.remove()
    weights = 4 * sum(p.numel() * p.element_size() for p in net.parameters())
    activations = estimates[1] - weights - 2 * in_channels * 128 * 128 * 4 - WORKSPACE_BYTES
    assert activations == pytest.approx(BACKWARD_FACTOR * produced, rel=0.02)


_MEASURE = """
import json, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from conftest import tiny_preset
from deepprior import engine
from deepprior.fitting import FitConfig, fit

def step(side):
    setup = engine.set_up(tiny_preset(1), 3, (side, side), 0, torch.device("cpu"))
    fit(setup.net, setup.net_input, torch.rand(1, 3, side, side), config=FitConfig(iterations=1, reg_noise_std=0.03),
        frame=setup.frame, generator=setup.generator)

step(32)  # the first step's one-time costs (lazy imports, kernels) are not the fit's


def status(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(field + ":"))


try:  # reset the peak (VmHWM) to what the process holds now (Linux), so the step's own peak is measured
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
except OSError:
    print(json.dumps(None))
    sys.exit()
now = status("VmRSS")
step({side})
deltas = [status("VmHWM") - now]
print(json.dumps({{"measured": min(deltas), "estimate": engine.estimate_memory(tiny_preset(1), ({side}, {side}), 3)}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures the peak through Linux's /proc")
def test_memory_estimate_covers_a_measured_training_step() -> None:
    side = 384  # large enough that activations, not the fixed allowance, dominate the estimate
    script = _MEASURE.format(tests=str(Path(__file__).parent), side=side)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found is None:
        pytest.skip("the peak resident size cannot be reset here")
    measured = found["measured"]
    assert measured > 100 * 2**20  # a real step at this size: the measurement sees it
    # about the right size: here the step's peak was 330 MB for an estimate of 548 MB, but one CI run measured
    # 650 MB for the same step (the allocator's first-call behaviour varies), hence the margin above
    assert measured <= 1.3 * found["estimate"] and found["estimate"] <= 3 * measured


def test_auto_stopping_is_the_same_with_and_without_a_ground_truth() -> None:
    clean = _smooth(32, 32)
    noisy = np.clip(clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1).astype(np.float32)
    preset = tiny_preset(300, reg_noise_std=1 / 30, ema_weight=0.9, ema_debias=True)
    settings = Settings(preset=preset, stop="auto", seed=5, device="cpu", precision="fp32")
    blind = pipeline.restore(job_from_arrays("denoise", {"image": noisy}, TaskOptions(sigma=0.1)), settings)
    seeing = pipeline.restore(job_from_arrays("denoise", {"image": noisy}, TaskOptions(sigma=0.1), ground_truth=clean),
                              settings)
    assert blind.result.stop_reason.startswith("auto: fit reached the noise level")  # the rule, not the cap, stopped
    assert blind.psnr is None and seeing.psnr is not None and "psnr" in seeing.result.history[-1]
    assert seeing.result.stop_iteration == blind.result.stop_iteration
    assert seeing.result.iterations_run == blind.result.iterations_run
    assert seeing.result.losses == blind.result.losses
    assert np.array_equal(seeing.image, blind.image)


def test_a_pixel_budget_caps_the_steps_of_a_large_image_unless_a_step_count_is_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from deepprior import presets
    from deepprior.presets import MIN_BUDGET_STEPS, get_preset

    fast = get_preset("fast")
    assert fast.for_size((128, 128)).fit.iterations == fast.fit.iterations  # small images: the step count alone
    assert fast.for_size((512, 512)).fit.iterations == presets.FAST_PIXEL_STEPS // (512 * 512) == 650
    assert fast.for_size((4096, 4096)).fit.iterations == MIN_BUDGET_STEPS
    assert get_preset("superres").for_size((4096, 4096)) == get_preset("superres")  # no budget, no change
    with pytest.raises(ValueError, match="pixel_steps"):
        replace(fast, pixel_steps=0)
    clean = _smooth(32, 32)
    noisy = np.clip(clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1).astype(np.float32)
    job = job_from_arrays("denoise", {"image": noisy}, TaskOptions(sigma=0.1))
    monkeypatch.setattr(presets, "MIN_BUDGET_STEPS", 1)  # so that a tiny image can show the budget
    budgeted = replace(tiny_preset(50, reg_noise_std=0.0), pixel_steps=12 * 32 * 32)
    capped = pipeline.restore(job, Settings(preset=replace(budgeted, stop_factor=0.5), seed=0, device="cpu",
                                            precision="fp32"))
    assert capped.result.iterations_run == 12  # 12 steps' worth of this image's pixels, before the rule stops it
    asked = pipeline.restore(job, Settings(preset=budgeted, iterations=20, seed=0, device="cpu", precision="fp32"))
    assert asked.result.iterations_run == 20  # a step count asked for is run in full


def test_refinement_without_noise_is_refused_before_any_fitting(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    fits: list[object] = []
    monkeypatch.setattr(pipeline, "fit", lambda *args, **kwargs: fits.append(args))
    job = job_from_arrays("denoise", {"image": _smooth(32, 32)}, TaskOptions(sigma=0.0))
    settings = Settings(preset=tiny_preset(5), refine=True, seed=0, device="cpu",
                        callbacks=(lambda s: calls.append(s.iteration),))
    with pytest.raises(InputError, match="Wiener refinement.*noise level is 0"):
        pipeline.plan(job, settings)
    with pytest.raises(InputError, match="noise level is 0"):
        pipeline.restore(job, settings)
    assert calls == [] and fits == []


def test_choose_rule_follows_the_noise_model_and_the_operator() -> None:
    fast = get_preset("fast")
    y = _smooth(16, 16)
    noisy = Measurement(y, Identity(), GaussianNoise(0.1))
    rule = engine.choose_rule("auto", fast, noisy)
    assert isinstance(rule, Discrepancy) and rule.sigma == 0.1 and rule.clipped  # y is the clipped image itself
    assert rule.factor == fast.stop_factor != 1.0
    assert isinstance(engine.choose_rule(None, fast, noisy), Discrepancy)  # auto by default
    blurred = engine.choose_rule("auto", fast, Measurement(y, Blur.gaussian(1.0), GaussianNoise(0.1)))
    assert isinstance(blurred, Discrepancy) and not blurred.clipped
    clean = engine.choose_rule("auto", fast, Measurement(y, Identity(), Noiseless()))
    assert isinstance(clean, WindowedVariance) and clean.plateau == AUTO_PLATEAU
    assert clean.patience is not None  # y is the image itself (JPEG): its artefacts are fitted in the end
    holes = engine.choose_rule("auto", fast, Measurement(y, Mask(np.ones((16, 16), bool)), Noiseless()))
    assert isinstance(holes, WindowedVariance) and holes.patience is None  # nothing to overfit: run until settled
    faint = engine.choose_rule("auto", fast, Measurement(y, Identity(), GaussianNoise(0.5 / 255)))
    assert isinstance(faint, WindowedVariance)  # below a grey level the noise is no risk
    given = engine.choose_rule(None, replace(fast, fit=replace(fast.fit, iterations=7)), noisy, iterations_given=True)
    assert isinstance(given, Fixed) and given.iterations == 7
    assert isinstance(engine.choose_rule("fixed", fast, noisy), Fixed)
    assert isinstance(engine.choose_rule("oracle", fast, noisy), Oracle)
    own = Fixed(3)
    assert engine.choose_rule(own, fast, noisy, iterations_given=True) is own


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


OPERATORS = {
    "mask": (lambda: Mask(np.random.default_rng(1).random((24, 24))), (1, 3, 24, 24)),
    "mask per channel": (lambda: Mask(np.random.default_rng(2).random((24, 24, 3)) > 0.5), (1, 3, 24, 24)),
    "blur": (lambda: Blur(np.random.default_rng(3).random((5, 4)) + np.eye(5, 4)), (1, 3, 24, 24)),
    "gaussian blur": (lambda: Blur.gaussian(1.5), (1, 2, 20, 23)),
    "downsample x2": (lambda: Downsample(2), (1, 3, 24, 24)),
    "downsample x3 bicubic": (lambda: Downsample(3, "bicubic"), (1, 1, 24, 24)),
    "blur then downsample": (lambda: Compose(Blur.gaussian(1.0), Downsample(2)), (1, 3, 24, 24)),
}


@pytest.mark.parametrize("name", list(OPERATORS))
def test_adjoint_passes_the_dot_product_test(name: str) -> None:
    make, shape = OPERATORS[name]
    op = make().double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    ax = op(x)
    y = torch.randn(ax.shape, generator=gen, dtype=torch.float64)
    aty = op.adjoint(y, tuple(x.shape))
    assert aty.shape == x.shape
    assert _dot(ax, y) == pytest.approx(_dot(x, aty), rel=1e-10, abs=1e-10)
    if isinstance(op, Mask):
        assert torch.equal(aty, y * op.mask.double())


def test_the_dot_product_test_tells_a_wrong_adjoint() -> None:
    """An asymmetric blur is not its own adjoint (its adjoint is the flipped kernel): the test above would
    catch an operator that returned ``A y`` for ``A^T y``."""
    op = Blur(np.random.default_rng(3).random((5, 4)) + np.eye(5, 4)).double()
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randn((1, 1, 16, 16), generator=gen, dtype=torch.float64) for _ in range(2))
    assert abs(_dot(op(x), y) - _dot(x, op(y))) > 1e-3 * abs(_dot(op(x), y))
