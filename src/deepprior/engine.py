"""The pieces a fit is made of, each decided once: the device and arithmetic, the generator and its input
on a canvas the network accepts, the stopping rule, and the classical stage after the fit.

:mod:`deepprior.pipeline` composes them; nothing here reads files or knows an interface. The canvas is
padded up to the size multiple the generator needs (the operator and the metrics only ever see the
image-sized crop), so any image size works and no pixel is lost.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from deepprior.fitting import FitResult, StoppingRule, make_rule, tensor_psnr
from deepprior.measurement import Measurement
from deepprior.nets import Generator, build_net, meshgrid_input, noise_input
from deepprior.presets import Preset

__all__ = ["Setup", "build_generator", "canvas_frame", "choose_rule", "estimate_memory", "measure_step_seconds",
           "projection_stage", "refinement_for", "resolve_device", "resolve_precision", "set_up", "wiener_stage"]


def bf16_is_fast(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (so autocast pays off)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:  # an older PyTorch without these probes
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` is ``"bf16"`` where the device computes it natively, else
    ``"fp32"``; ``"fp32"`` is the original's arithmetic, exactly."""
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return precision


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; other names are checked."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but no CUDA GPU is available")
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' asked for, but Apple MPS is not available")
    return chosen


def canvas_frame(
    height: int, width: int, multiple: int, min_size: int = 0
) -> tuple[int, int, tuple[int, int, int, int]]:
    """Canvas size rounded up to ``multiple`` (and at least ``min_size``), and
    the centred frame of the image in it.

    >>> canvas_frame(37, 53, 32)
    (64, 64, (13, 5, 37, 53))
    >>> canvas_frame(96, 20, 32, min_size=64)
    (96, 64, (0, 22, 96, 20))
    """
    ch = max(math.ceil(height / multiple) * multiple, min_size)
    cw = max(math.ceil(width / multiple) * multiple, min_size)
    return ch, cw, ((ch - height) // 2, (cw - width) // 2, height, width)


def network_input(
    preset: Preset, net: Generator, canvas: tuple[int, int], guide: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    ch, cw = canvas
    if preset.input_kind == "noise":
        d = net.input_downscale
        return noise_input(net.in_channels, ch // d, cw // d, scale=preset.input_scale, generator=generator)
    if preset.input_kind == "meshgrid":
        return meshgrid_input(ch, cw)
    if preset.input_kind in ("image", "measurement", "estimate"):
        if guide is None:
            raise ValueError(f"preset {preset.name!r} needs a guidance image as network input")
        h, w = guide.shape[-2:]
        top, left = (ch - h) // 2, (cw - w) // 2
        pads = (left, cw - w - left, top, ch - h - top)
        mode = "reflect" if all(p < s for p, s in zip(pads, (w, w, h, h))) else "replicate"
        return nn.functional.pad(guide, pads, mode=mode)
    raise ValueError(f"unknown network input {preset.input_kind!r} (use noise, meshgrid, image, measurement or "
                     f"estimate)")


def build_generator(preset: Preset, out_channels: int, guide: torch.Tensor | None = None) -> tuple[Generator, int]:
    """``preset``'s network (randomly initialised) and the channel count of its input."""
    if preset.input_kind == "meshgrid":
        in_channels = 2
    elif preset.input_kind in ("image", "measurement", "estimate"):
        if guide is None:
            raise ValueError(f"preset {preset.name!r} needs a guidance image as network input")
        in_channels = guide.shape[1]
    else:
        in_channels = preset.input_channels
    if preset.net == "deep_decoder":
        in_channels = dict(preset.net_options).get("channels", 64)
    try:
        net = build_net(preset.net, in_channels, out_channels, **dict(preset.net_options))
    except TypeError as exc:
        raise ValueError(f"preset {preset.name!r} has network options that {preset.net!r} does not take: {exc}") from None
    return net, in_channels


def estimate_memory(preset: Preset, image_size: tuple[int, int], channels: int, guide: torch.Tensor | None = None) -> int:
    """Bytes a fit of ``preset`` on an image of ``image_size`` will need at its peak (see :mod:`deepprior.memory`)."""
    from deepprior.memory import estimate_fit_bytes

    if guide is None and preset.input_kind in ("image", "measurement", "estimate"):
        guide = torch.zeros(1, channels, 1, 1)
    net, in_channels = build_generator(preset, channels, guide)
    ch, cw, _ = canvas_frame(image_size[0], image_size[1], net.size_multiple, net.min_size)
    return estimate_fit_bytes(net, in_channels, (ch, cw))


def measure_step_seconds(preset: Preset, channels: int, device: torch.device, precision: str, *,
                         sizes: tuple[int, int] = (64, 160), steps: int = 3) -> tuple[float, float]:
    """The cost of one fitting step of ``preset`` here, as ``(fixed seconds, seconds per canvas pixel)``:
    a few steps of its network, through the real fitting loop, on two canvas sizes (each timed after a
    warm-up step), and the line through the two. A step on a canvas of ``n`` pixels then takes about
    ``fixed + n * per_pixel`` seconds: an expected run time for a page to show before a run."""
    from dataclasses import replace

    from deepprior.fitting import fit

    points = []
    for size in sizes:
        guide = torch.rand(1, channels, size, size) if preset.input_kind in ("image", "measurement", "estimate") \
            else None
        setup = set_up(preset, channels, (size, size), 0, device, guide)
        y = torch.rand(1, channels, size, size, device=device)
        stamps: list[float] = []
        config = replace(preset.fit, iterations=steps + 1, backtrack_db=None)
        fit(setup.net, setup.net_input, y, None, config, frame=setup.frame, generator=setup.generator,
            callbacks=[lambda state, stamps=stamps: stamps.append(time.perf_counter())],
            stopping=make_rule("fixed", iterations=steps + 1), precision=precision,
            channels_last=precision == "bf16")
        points.append((setup.net_input.shape[-2] * setup.net_input.shape[-1], (stamps[-1] - stamps[0]) / steps))
    (small, t_small), (large, t_large) = points
    per_pixel = max(t_large - t_small, 0.0) / (large - small)
    return max(t_small - per_pixel * small, 0.0), per_pixel


def choose_rule(stop: str | StoppingRule | None, preset: Preset, measurement: Measurement, *,
                iterations_given: bool = False) -> StoppingRule:
    """The stopping rule of a run: ``stop`` by name (``None``: ``fixed`` when the iteration count was given,
    else ``auto``) or as a rule object. ``auto`` follows the measurement's noise model: at its level when
    it has one (within the preset's factor, on the clipped-noise residual when ``y`` is the image itself),
    else when the output settles (at its least-variance output when ``y`` is the image itself), and after the
    recipe's steps when the noise model gives no level to compare the residual with (a camera's JPEG noise)."""
    if isinstance(stop, StoppingRule):
        return stop
    if stop is None:
        stop = "fixed" if iterations_given else "auto"
    if stop == "fixed" or (stop == "auto" and measurement.noise.fixed_length):
        return make_rule("fixed", iterations=preset.fit.iterations)
    if stop == "auto":
        return make_rule("auto", sigma=measurement.sigma, clipped=measurement.direct, factor=preset.stop_factor,
                         direct=measurement.direct)
    return make_rule(stop)


@dataclass
class Setup:
    """A generator ready to fit: the network on its device, its fixed input, the image's frame in the
    network's canvas, and the random source of the input perturbation."""

    net: Generator
    net_input: torch.Tensor
    frame: tuple[int, int, int, int]
    generator: torch.Generator


def set_up(preset: Preset, channels: int, image_size: tuple[int, int], seed: int, device: torch.device,
           guide: torch.Tensor | None = None) -> Setup:
    """Build ``preset``'s generator (seeded by ``seed``) and its input for an image of ``image_size``."""
    torch.manual_seed(seed)
    net, _ = build_generator(preset, channels, guide)
    ch, cw, frame = canvas_frame(image_size[0], image_size[1], net.size_multiple, net.min_size)
    generator = torch.Generator().manual_seed(seed)
    z = network_input(preset, net, (ch, cw), guide, generator).to(device)
    return Setup(net.to(device), z, frame, generator)


def refinement_for(preset: Preset, measurement: Measurement, wanted: bool | None) -> str | None:
    """The classical stage to run after the fit: ``"wiener"`` (a noisy image observed directly: denoising),
    ``"project"`` (a noiseless measurement through an operator, such as super-resolution or inpainting: the
    output made to agree with it exactly) or ``None``.

    ``wanted``: ``None`` runs the preset's stage where the measurement allows it, ``False`` none, ``True``
    the stage that suits the measurement (a ``ValueError`` when none does: noise seen through an operator).
    """
    noisy, direct = bool(measurement.sigma), measurement.direct
    suits = "wiener" if noisy and direct else ("project" if not noisy and not direct else None)
    if wanted is None:
        return preset.refine if preset.refine == suits else None
    if not wanted:
        return None
    if suits is None and direct:
        raise ValueError("the Wiener refinement filters the noisy image itself, but the noise level is 0")
    if suits is None:
        raise ValueError("no refinement suits noise seen through an operator: the Wiener stage filters the noisy "
                         "image itself (denoising), the data projection needs a noiseless measurement")
    return suits


def projection_stage(result: FitResult, measurement: torch.Tensor, operator: torch.nn.Module,
                     ground_truth: torch.Tensor | None = None, classical_weight: float = 0.0,
                     levels: Sequence[float] = (), final_levels: Sequence[float] = ()) -> None:
    """Refine ``result`` in place so that its output explains the noiseless measurement exactly.

    The fit is moved the least that makes it explain the measurement (:func:`deepprior.consistency.project_to_data`)
    and, for each of ``levels``, filtered collaboratively by itself and projected again
    (:func:`deepprior.consistency.collaborative_projection`). When the preset asks (``classical_weight`` > 0), the
    operator's classical reconstruction goes through the same passes on its own and the two are averaged with that
    weight: their errors differ, so the average beats both. ``final_levels`` are passes over the average. The passes
    are skipped above :data:`~deepprior.presets.COLLABORATIVE_MAX_PIXELS` values."""
    from deepprior.consistency import collaborative_projection, project_to_data
    from deepprior.presets import COLLABORATIVE_MAX_PIXELS

    start = time.perf_counter()
    fitted = result.fitted
    if not bool(torch.isfinite(fitted).all()):
        result.refinement = {"method": "project", "skipped": "the fit diverged (its output is not finite)"}
        return
    y = measurement.to(fitted.device, torch.float32)
    before = float(torch.mean((operator(fitted.float()) - y) ** 2))
    collaborate = fitted.numel() <= COLLABORATIVE_MAX_PIXELS

    def refine(x: torch.Tensor, schedule: Sequence[float]) -> torch.Tensor:
        x = project_to_data(x, y, operator)
        return collaborative_projection(x, y, operator, schedule) if schedule and collaborate else x

    projected = project_to_data(fitted.float(), y, operator)
    refined = refine(fitted.float(), levels)
    mixed = classical_weight > 0 and hasattr(operator, "classical")
    if mixed:
        classical = operator.classical(y, tuple(fitted.shape)).to(fitted.device, torch.float32)
        refined = (1 - classical_weight) * refined + classical_weight * refine(classical, levels)
    refined = refine(refined, final_levels)
    result.refined = refined.to(fitted.dtype)
    after = float(torch.mean((operator(result.refined.float()) - y) ** 2))
    result.refinement = {"method": "project", "data_mse_before": before, "data_mse_after": after,
                         "seconds": round(time.perf_counter() - start, 3)}
    if mixed:
        result.refinement["classical_weight"] = classical_weight
    if levels or final_levels:
        result.refinement["collaborative_passes"] = (len(levels) * (2 if mixed else 1) + len(final_levels)
                                                     if collaborate else 0)
        if not collaborate:
            result.refinement["collaborative_skipped"] = (f"{fitted.numel()} values, above "
                                                          f"{COLLABORATIVE_MAX_PIXELS}")
    if ground_truth is not None:
        gt = ground_truth.to(fitted.device)
        result.refinement["psnr_fitted"] = round(tensor_psnr(fitted, gt), 4)
        if levels or final_levels:
            result.refinement["psnr_projected"] = round(tensor_psnr(projected, gt), 4)
        result.refinement["psnr_refined"] = round(tensor_psnr(result.refined, gt), 4)


def wiener_stage(result: FitResult, measurement: torch.Tensor, sigma: float,
                 ground_truth: torch.Tensor | None = None, stride: int = 1, passes: int = 1,
                 mixture_share: float = 0.0, complete: bool | None = None) -> None:
    """Refine ``result`` in place with classical filters of the noisy measurement: empirical Wiener filters
    with the fit as pilot, several window sizes and colour transforms mixed by SURE
    (:func:`deepprior.refine.wiener_mix`), then ``passes`` of collaborative Wiener filtering of stacks of
    similar patches (:func:`deepprior.blockmatch.collaborative_refine`), the first matched on that mixture and
    each later one on the pass before. Each pass takes the estimate further from the fit, toward what the
    filter makes of the noisy image by itself (``docs/benchmarks.md`` measures how far). After a fit that
    stopped at the noise level, the output is the last pass averaged with the mixture at ``mixture_share``: the
    two err in different places (the mixture keeps more of such a fit's smooth regions, the passes more
    texture), so the average can beat both. A fit stopped short of the noise level (a time budget, a fixed step
    count) is a weaker pilot, and its mixture only drags the passes back: the last pass is then the output.
    ``complete`` says whether the fit ran its whole course (``None``: whether it stopped at the noise level; a
    fixed-length recipe's fit is complete when no time budget shortened it)."""
    from deepprior.blockmatch import collaborative_refine
    from deepprior.refine import wiener_mix

    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    start = time.perf_counter()
    fitted = result.fitted
    if not bool(torch.isfinite(fitted).all()):  # a diverged fit is no pilot: return it as it is
        result.refinement = {"method": "wiener", "skipped": "the fit diverged (its output is not finite)"}
        return
    noisy = measurement.to(fitted.device, fitted.dtype)
    mix = wiener_mix(noisy, fitted, sigma, stride=stride)
    refined, y = mix.image.float(), noisy.float()
    for _ in range(passes):
        refined = collaborative_refine(y, refined, sigma)
    if complete is None:
        complete = result.stopping.get("stopped_at") is not None  # the fit reached the noise level
    if not complete:
        mixture_share = 0.0
    if mixture_share:
        refined = mixture_share * mix.image.float() + (1 - mixture_share) * refined
    result.refined = refined.to(fitted.dtype)
    result.refinement = {"method": "wiener", "patches": mix.patches, "colours": mix.colours, "stride": stride,
                         "sigma": round(sigma, 6), "weights": {k: w for k, w in mix.weights.items() if w > 0},
                         "collaborative_passes": passes, "mixture_share": mixture_share, "seconds": round(time.perf_counter() - start, 3)}
    if ground_truth is not None:
        gt = ground_truth.to(fitted.device)
        result.refinement["psnr_fitted"] = round(tensor_psnr(fitted, gt), 4)
        result.refinement["psnr_wiener"] = round(tensor_psnr(mix.image, gt), 4)
        result.refinement["psnr_refined"] = round(tensor_psnr(result.refined, gt), 4)
