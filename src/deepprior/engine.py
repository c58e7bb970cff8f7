"""One engine under every interface: from a measurement, an operator and a
preset to a fitted result.

It builds the generator and its input, pads the network's canvas up to the
size multiple the generator needs (the operator and metrics only ever see the
image-sized crop, so any size works and no pixel is lost), and runs
:func:`deepprior.fitting.fit`.
"""
from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import nn

from deepprior.fitting import Checkpoint, FitResult, StoppingRule, fit, make_rule, tensor_psnr
from deepprior.fitting.result import IterationState
from deepprior.operators import Identity
from deepprior.nets import Generator, build_net, meshgrid_input, noise_input
from deepprior.presets import Preset

__all__ = ["build_generator", "canvas_frame", "estimate_memory", "resolve_device", "resolve_precision", "run"]


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


def _network_input(
    preset: Preset, net: Generator, canvas: tuple[int, int], guide: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    ch, cw = canvas
    if preset.input_kind == "noise":
        d = net.input_downscale
        return noise_input(net.in_channels, ch // d, cw // d, scale=preset.input_scale, generator=generator)
    if preset.input_kind == "meshgrid":
        return meshgrid_input(ch, cw)
    if preset.input_kind in ("image", "measurement"):
        if guide is None:
            raise ValueError(f"preset {preset.name!r} needs a guidance image as network input")
        h, w = guide.shape[-2:]
        top, left = (ch - h) // 2, (cw - w) // 2
        pads = (left, cw - w - left, top, ch - h - top)
        mode = "reflect" if all(p < s for p, s in zip(pads, (w, w, h, h))) else "replicate"
        return nn.functional.pad(guide, pads, mode=mode)
    raise ValueError(f"unknown network input {preset.input_kind!r} (use noise, meshgrid or image)")


def build_generator(preset: Preset, out_channels: int, guide: torch.Tensor | None = None) -> tuple[Generator, int]:
    """``preset``'s network (randomly initialised) and the channel count of its input."""
    if preset.input_kind == "meshgrid":
        in_channels = 2
    elif preset.input_kind in ("image", "measurement"):
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

    if guide is None and preset.input_kind in ("image", "measurement"):
        guide = torch.zeros(1, channels, 1, 1)
    net, in_channels = build_generator(preset, channels, guide)
    ch, cw, _ = canvas_frame(image_size[0], image_size[1], net.size_multiple, net.min_size)
    return estimate_fit_bytes(net, in_channels, (ch, cw))


def run(
    measurement: torch.Tensor,
    operator: nn.Module | Callable[[torch.Tensor], torch.Tensor] | None,
    preset: Preset,
    *,
    image_size: tuple[int, int],
    channels: int | None = None,
    iterations: int | None = None,
    seed: int | None = None,
    device: str | torch.device = "auto",
    ground_truth: torch.Tensor | None = None,
    guide: torch.Tensor | None = None,
    callbacks: Sequence[Callable[[IterationState], object]] = (),
    stop: str | StoppingRule | None = None,
    sigma: float | None = None,
    progress: bool = False,
    description: str | None = None,
    precision: str = "auto",
    checkpoint: str | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    refine: bool | None = None,
) -> tuple[FitResult, Generator, int]:
    """Fit ``preset``'s generator to ``measurement`` through ``operator``.

    Parameters
    ----------
    measurement : ``(1, C, h, w)`` corrupted image in [0, 1].
    operator : forward model mapping a ``(1, C, H, W)`` image to the measurement's shape.
    preset : the recipe.
    image_size : ``(H, W)`` of the image to reconstruct (the measurement's size
        times the scale for super-resolution).
    channels : channels of the reconstruction (default: the measurement's).
    iterations : override the preset's iteration budget.
    seed : makes the run reproducible on the CPU; drawn at random when ``None``.
    guide : the network input image for ``input_kind="image"`` presets.
    stop : the stopping rule: ``"fixed"`` (run the iteration budget),
        ``"auto"`` (decide from the run itself, with the budget as a cap),
        ``"oracle"`` (best PSNR against ``ground_truth``; benchmarks only), or
        a :class:`~deepprior.fitting.StoppingRule`. By default ``"auto"``,
        or ``"fixed"`` when ``iterations`` is given.
    precision : ``"auto"`` (bfloat16 autocast and channels-last layout where
        the device computes bf16 natively, about 2x faster; fp32 elsewhere),
        ``"bf16"``, or ``"fp32"``: the original's arithmetic and layout.
    checkpoint, checkpoint_every : save the fit's whole state to this file
        every so many steps and at the end (atomically).
    resume : continue from ``checkpoint`` (which must exist): the run ends
        exactly as the uninterrupted one would have on the CPU. The seed and
        the rest of the run's state come from the file.
    sigma : the measurement's noise level ([0, 1] scale), given or
        estimated: ``auto`` then stops by the discrepancy principle, and
        SURE-loss recipes and the Wiener refinement need it.
    refine : run the preset's classical stage after the fit (``None``: as
        the preset says; ``False``: never; ``True``: the Wiener stage even
        if the preset has none). It needs an identity operator and ``sigma``;
        without them the preset's stage is skipped (and ``True`` is an error).

    Returns
    -------
    (result, net, seed) : the fit result, the trained generator, and the seed used.
    """
    dev = resolve_device(device)
    if dev.type == "cuda":  # one fixed input size for thousands of steps: let cuDNN pick its fastest kernels once
        torch.backends.cudnn.benchmark = True
    precision = resolve_precision(precision, dev)
    preset = preset.with_iterations(iterations)
    if preset.fit.loss == "sure" and preset.fit.sure_sigma is None and sigma is not None:
        preset = replace(preset, fit=replace(preset.fit, sure_sigma=sigma))
    if preset.input_kind == "measurement":
        if tuple(measurement.shape[-2:]) != tuple(image_size):
            raise ValueError(f"preset {preset.name!r} feeds the measurement to the network, so it must have the image's size")
        guide = measurement
    if stop is None:
        stop = "fixed" if iterations is not None else "auto"
    if isinstance(stop, str):
        if stop == "oracle" and ground_truth is None:
            raise ValueError("the oracle stopping rule needs a ground truth")
        if stop == "fixed":
            rule: StoppingRule = make_rule("fixed", iterations=preset.fit.iterations)
        elif stop == "auto":
            rule = make_rule("auto", sigma=sigma, clipped=operator is None or isinstance(operator, Identity),
                             factor=preset.stop_factor)
        else:
            rule = make_rule(stop)
    else:
        rule = stop
    saved = None
    if resume:
        if checkpoint is None:
            raise ValueError("resume needs the checkpoint file to resume from")
        saved = Checkpoint.load(checkpoint)
        found = (saved.get("preset"), tuple(saved.get("image_size", ())), saved.get("precision"))
        if found != (preset.name, tuple(image_size), precision):
            raise ValueError(f"checkpoint '{checkpoint}' is for another run (recipe, size, precision {found}), "
                             f"not ({preset.name!r}, {tuple(image_size)}, {precision!r})")
        seed = saved["seed"]  # the stopping rule's state is restored by the loop
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    torch.manual_seed(seed)
    net, in_channels = build_generator(preset, channels or measurement.shape[1], guide)
    height, width = image_size
    ch, cw, frame = canvas_frame(height, width, net.size_multiple, net.min_size)
    generator = torch.Generator().manual_seed(seed)
    z = _network_input(preset, net, (ch, cw), guide, generator).to(dev)
    net = net.to(dev)
    result = fit(
        net,
        z,
        measurement.to(dev),
        operator,
        preset.fit,
        frame=frame,
        ground_truth=ground_truth,
        callbacks=callbacks,
        stopping=rule,
        generator=generator,
        progress=progress,
        description=description or preset.name,
        precision=precision,
        channels_last=precision == "bf16",
        checkpoint=Checkpoint(checkpoint, checkpoint_every, meta={"seed": seed, "preset": preset.name,
                                                                "image_size": tuple(image_size),
                                                                "precision": precision}) if checkpoint else None,
        resume=saved,
    )
    method = preset.refine if refine is None else ("wiener" if refine else None)
    denoising = operator is None or isinstance(operator, Identity)
    if refine and not (denoising and sigma):
        raise ValueError("the Wiener refinement needs the noise level and an identity forward model (denoising)")
    if method == "wiener" and denoising and sigma:
        _wiener_stage(result, measurement.to(dev), sigma, ground_truth)
    return result, net, seed


def _wiener_stage(result: FitResult, measurement: torch.Tensor, sigma: float,
                  ground_truth: torch.Tensor | None, stride: int = 1) -> None:
    """Refine ``result`` in place: empirical Wiener filters of the measurement with the fit as pilot,
    several window sizes and colour transforms mixed by SURE (:func:`deepprior.refine.wiener_mix`)."""
    import time

    from deepprior.refine import wiener_mix

    start = time.perf_counter()
    fitted = result.fitted
    mix = wiener_mix(measurement.to(fitted.dtype), fitted, sigma, stride=stride)
    result.refined = mix.image
    result.refinement = {"method": "wiener", "patches": mix.patches, "colours": mix.colours, "stride": stride,
                         "sigma": round(sigma, 6), "weights": {k: w for k, w in mix.weights.items() if w > 0},
                         "seconds": round(time.perf_counter() - start, 3)}
    if ground_truth is not None:
        gt = ground_truth.to(fitted.device)
        result.refinement["psnr_fitted"] = round(tensor_psnr(fitted, gt), 4)
        result.refinement["psnr_refined"] = round(tensor_psnr(result.refined, gt), 4)
