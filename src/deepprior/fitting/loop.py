"""The Deep Image Prior fitting loop.

Fit a generator ``f_theta`` so that the operator applied to its output matches
the measurement, ``min_theta || A(f_theta(z + eps)) - y ||^2``, with Adam. The
paper's refinements are all here: fresh input perturbation ``eps`` each step
(``reg_noise_std``), an exponential moving average of the outputs, and
backtracking to the last good weights when the data fit suddenly collapses.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deepprior.fitting.averaging import OutputAverage
from deepprior.fitting.backtracking import Backtracker
from deepprior.fitting.checkpoint import Checkpoint
from deepprior.fitting.history import Progress, history_row
from deepprior.fitting.result import FitResult, IterationState
from deepprior.fitting.stopping import StoppingRule
from deepprior.operators import as_operator

__all__ = ["PRECISIONS", "Checkpoint", "FitConfig", "Frame", "fit"]

Frame = tuple[int, int, int, int]
"""(top, left, height, width) of the image inside the network's canvas."""

Callback = Callable[[IterationState], Any]


@dataclass(frozen=True)
class FitConfig:
    """The optimisation part of a recipe.

    Attributes
    ----------
    iterations : maximum number of Adam steps.
    lr : Adam learning rate.
    reg_noise_std : standard deviation of the Gaussian noise added afresh to
        the network input at every step (0 turns it off).
    ema_weight : weight of the exponential moving average of the outputs,
        ``avg = w * avg + (1 - w) * out``; ``None`` turns averaging off.
    ema_debias : start the average at zero and divide by ``1 - w ** t`` (as
        Adam does) instead of starting it at the first output, as the
        original does. The first, blank outputs then weigh almost nothing,
        so short runs are not dragged down by them.
    backtrack_db : restore the last good weights when the PSNR of ``A(x)``
        against ``y`` drops by more than this many dB in one step (the
        original uses 5); ``None`` turns it off.
    param_noise : after each step add Gaussian noise of this many standard
        deviations (of each weight tensor) to the convolution weights.
    tv_weight : weight of a total-variation penalty on the output.
    loss : ``"mse"``, the paper's data term, or ``"sure"``: Stein's unbiased
        estimate of the error to the clean image for Gaussian noise of
        standard deviation ``sure_sigma`` (Jo, Chun and Choi, ICCV 2021). Its
        divergence term (estimated by one Monte-Carlo probe per step, at the
        cost of a second forward pass) penalises copying the noisy input, so
        it needs a network whose input is the measurement itself
        (``input_kind="measurement"``) and an identity operator.
    sure_sigma : the noise standard deviation for ``loss="sure"``, [0, 1] scale.
    """

    iterations: int = 3000
    lr: float = 0.01
    reg_noise_std: float = 0.0
    ema_weight: float | None = None
    ema_debias: bool = False
    backtrack_db: float | None = None
    param_noise: float = 0.0
    tv_weight: float = 0.0
    loss: str = "mse"
    sure_sigma: float | None = None

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "sure"):
            raise ValueError(f"unknown loss {self.loss!r} (use mse or sure)")
        if self.sure_sigma is not None and not self.sure_sigma > 0:
            raise ValueError(f"sure_sigma must be > 0, got {self.sure_sigma}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
        if self.reg_noise_std < 0 or self.param_noise < 0 or self.tv_weight < 0:
            raise ValueError("reg_noise_std, param_noise and tv_weight must be >= 0")
        if self.ema_weight is not None and not 0.0 <= self.ema_weight < 1.0:
            raise ValueError(f"ema_weight must be in [0, 1), got {self.ema_weight}")


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


PRECISIONS = ("fp32", "bf16")


def _sure_correction(
    net: nn.Module,
    z: torch.Tensor,
    out: torch.Tensor,
    crop: Callable[[torch.Tensor], torch.Tensor],
    sigma: float | None,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """SURE's terms beyond the data MSE: ``-sigma^2 + 2 sigma^2 div f / N``,
    the divergence by a Monte-Carlo probe ``b^T (f(z + e b) - f(z)) / e``."""
    assert sigma is not None
    epsilon = 1e-3 * max(float(z.detach().abs().max()), 1e-3)
    probe = torch.randn(z.shape, generator=generator, device=generator.device if generator else device).to(device)
    shifted = crop(net(z + epsilon * probe))
    divergence = torch.sum(crop(probe) * (shifted - out)) / epsilon
    return -(sigma**2) + 2 * sigma**2 * divergence / out.numel()


def tensor_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between two images in [0, 1], in double precision; ``inf`` when they are equal."""
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def _callback_name(cb: Callback) -> str:
    return getattr(cb, "name", None) or getattr(cb, "__name__", None) or type(cb).__name__


def _adam(params: list[torch.Tensor], lr: float, fused: bool) -> torch.optim.Optimizer:
    """Adam as the paper uses it. ``fused``: PyTorch's single-kernel implementation (the same update, about 3x
    faster to apply than the per-tensor loop on a CPU), for the fast path; the fp32 path keeps the original's."""
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):  # a device or PyTorch without the fused kernel
            pass
    return torch.optim.Adam(params, lr=lr)


def fit(
    net: nn.Module,
    net_input: torch.Tensor,
    measurement: torch.Tensor,
    operator: nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None,
    config: FitConfig = FitConfig(),
    *,
    frame: Frame | None = None,
    ground_truth: torch.Tensor | None = None,
    callbacks: Sequence[Callback] = (),
    stopping: StoppingRule | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    description: str = "fitting",
    precision: str = "fp32",
    channels_last: bool = False,
    checkpoint: Checkpoint | None = None,
    resume: dict[str, Any] | None = None,
) -> FitResult:
    """Fit ``net`` to ``measurement`` through ``operator`` and return the result.

    Parameters
    ----------
    net : the generator, on the device to use; trained in place.
    net_input : the fixed input ``z``, ``(1, C_in, H_in, W_in)``.
    measurement : the corrupted image ``y``, ``(1, C, h, w)``.
    operator : the forward model ``A`` (``None`` for identity); any
        differentiable callable works.
    config : the optimisation recipe.
    frame : ``(top, left, height, width)`` of the image inside the network's
        output canvas, when the canvas was padded to a size the network
        accepts; the operator and the metrics see only this crop.
    ground_truth : the clean image ``(1, C, height, width)``; when given,
        PSNR is recorded at every step. It never influences the fit.
    callbacks : called with an :class:`IterationState` after every step; a
        truthy return value stops the loop (a string becomes the stop reason).
    stopping : a :class:`~deepprior.fitting.stopping.StoppingRule`, which may
        end the run early and pick the output to return; the loop never runs
        past ``config.iterations`` in any case.
    generator : random source for the input perturbation (reproducibility).
    progress : show a progress bar with loss and PSNR.
    precision : ``"fp32"`` (the original's arithmetic) or ``"bf16"``: the
        network runs under bfloat16 autocast while the weights, the optimiser,
        the loss and the averaged output stay in fp32. About 2x faster on
        CPUs with native bf16 (AVX512-BF16, AMX) and on recent GPUs. The
        SURE loss always runs in fp32 (its finite-difference probe needs it).
        The bf16 path also applies Adam with PyTorch's fused kernel.
    channels_last : keep the network and its input in channels-last memory
        layout, which the CPU's convolution kernels prefer.
    checkpoint : save the whole state of the fit (network, optimiser,
        averages, stopping rule, random generators, history) every
        ``checkpoint.every`` steps and when the fit ends, atomically.
    resume : a state saved by ``checkpoint`` (:meth:`Checkpoint.load`): the
        fit continues from it and ends exactly as the uninterrupted fit would
        have (on the CPU; the same network, input and generator are needed).

    Examples
    --------
    >>> from deepprior.nets import build_net
    >>> _ = torch.manual_seed(0)
    >>> net = build_net("skip", 4, 1, channels_down=[4, 4], channels_up=[4, 4], channels_skip=[1, 1])
    >>> y = torch.rand(1, 1, 8, 8)
    >>> result = fit(net, torch.rand(1, 4, 8, 8), y, config=FitConfig(iterations=3))
    >>> result.iterations_run, tuple(result.output.shape), result.stop_reason
    (3, (1, 1, 8, 8), 'iterations')
    """
    device = net_input.device
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    use_bf16 = precision == "bf16" and config.loss != "sure"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        net_input = net_input.contiguous(memory_format=torch.channels_last)
    if config.loss == "sure" and config.sure_sigma is None:
        raise ValueError("the SURE loss needs the noise level (sure_sigma, or sigma for denoising)")
    operator = as_operator(operator).to(device)
    y = measurement.to(device)
    gt = ground_truth.to(device) if ground_truth is not None else None
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = _adam(params, config.lr, fused=precision == "bf16")
    conv_weights = [p for p in params if p.ndim == 4]

    def crop(out: torch.Tensor) -> torch.Tensor:
        if frame is None:
            return out
        top, left, h, w = frame
        return out[..., top : top + h, left : left + w]

    result = FitResult(image=torch.empty(0), average=None)
    result.parameters = sum(p.numel() for p in params)
    average = OutputAverage(config.ema_weight, config.ema_debias) if config.ema_weight is not None else None
    guard = Backtracker(params, config.backtrack_db) if config.backtrack_db is not None else None
    latest: torch.Tensor | None = None
    first, elapsed = 1, 0.0
    if resume is not None:
        net.load_state_dict(resume["net"])
        optimizer.load_state_dict(resume["optimizer"])
        latest = resume["latest"].to(device) if resume["latest"] is not None else None
        if average is not None:
            average.load_state_dict(resume, device)
        if guard is not None:
            guard.load_state_dict(resume)
        result.history = list(resume["history"])
        if generator is not None:
            generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        if resume.get("stopping") is not None and stopping is not None:
            stopping.__dict__.update(resume["stopping"].__dict__)
        first, elapsed = resume["iteration"] + 1, resume["seconds"]
        result.iterations_run = resume["iteration"]

    def save_checkpoint(iteration: int) -> None:
        assert checkpoint is not None
        checkpoint.save({
            "iteration": iteration, "net": net.state_dict(), "optimizer": optimizer.state_dict(), "latest": latest,
            **(average.state_dict() if average is not None else {"average": None, "ema_sum": None, "ema_steps": 0}),
            **(guard.state_dict() if guard is not None else {"last_good": None, "last_good_psnr": -math.inf,
                                                             "backtracks": 0}),
            "history": result.history, "generator": generator.get_state() if generator is not None else None,
            "torch_rng": torch.get_rng_state(), "stopping": stopping, "seconds": elapsed + time.perf_counter() - start,
        })

    net.train()
    start = time.perf_counter()
    bar = Progress(config.iterations, first - 1, description, progress)
    try:
        for iteration in range(first, config.iterations + 1):
            optimizer.zero_grad(set_to_none=True)
            z = net_input
            if config.reg_noise_std > 0:
                eps = torch.randn(net_input.shape, generator=generator, device=generator.device if generator else device)
                z = net_input + eps.to(device) * config.reg_noise_std
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = crop(net(z))
            out = out.float()
            data_loss = torch.mean((operator(out) - y) ** 2)
            loss = data_loss
            if config.loss == "sure":
                loss = loss + _sure_correction(net, z, out, crop, config.sure_sigma, generator, device)
            if config.tv_weight > 0:
                loss = loss + config.tv_weight * _total_variation(out)
            loss_value = float(loss.detach())
            backtracked = guard.check(float(data_loss.detach())) if guard is not None else False
            if not backtracked:
                loss.backward()
                optimizer.step()
                if config.param_noise > 0:
                    with torch.no_grad():
                        for w in conv_weights:
                            w.add_(torch.randn_like(w) * (w.std() * config.param_noise))
                latest = out.detach()
                if average is not None:
                    average.update(latest)
            assert latest is not None or backtracked
            shown = latest if latest is not None else out.detach()
            mean = average.value if average is not None else None
            fit_value = float(data_loss.detach()) if loss is not data_loss else loss_value
            state = IterationState(iteration, loss_value, shown, mean, fit=fit_value, backtracked=backtracked)
            state.seconds = elapsed + time.perf_counter() - start
            if gt is not None:
                state.psnr = tensor_psnr(shown, gt)
                if mean is not None:
                    state.psnr_average = tensor_psnr(mean, gt)
            row = history_row(state, has_ground_truth=gt is not None)
            result.history.append(row)
            result.iterations_run = iteration
            bar.update(row)
            stop = None
            if stopping is not None:
                stop = stopping(state)
                state.monitor = stopping.monitor()
            for cb in callbacks:  # every callback sees every iteration, the last one included
                answer = cb(state)
                if answer and not stop:
                    stop = answer if isinstance(answer, str) else _callback_name(cb)
            if checkpoint is not None and checkpoint.due(iteration, config.iterations, stop is not None):
                save_checkpoint(iteration)
            if stop is not None:
                result.stop_reason = stop
                break
    except KeyboardInterrupt:
        result.stop_reason = "interrupted"
    finally:
        bar.close()
    result.seconds = elapsed + time.perf_counter() - start
    if latest is None:  # interrupted before the first step finished
        with torch.no_grad():
            latest = crop(net(net_input)).detach()
    result.image = latest
    result.average = average.value if average is not None else None
    result.backtracks = guard.count if guard is not None else 0
    result.stop_iteration = result.iterations_run
    if stopping is not None:
        if result.stop_reason == "iterations" and result.iterations_run == config.iterations:
            result.stop_reason = f"{stopping.name}: cap of {config.iterations} iterations reached"
        chosen = stopping.selection()
        if chosen is not None:
            result.stop_iteration, result.selected = chosen
        result.stopping = stopping.describe()
    result.precision = "bf16" if use_bf16 else "fp32"
    return result
