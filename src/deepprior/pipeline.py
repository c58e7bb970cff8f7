"""One restoration pipeline under every interface: a job and its settings in, the restored image out.

The command line, the NumPy API, the web app and batch workers all call :func:`restore`; none of them
repeats what it decides. It resolves the recipe and the device, checks everything that can be checked
before any work (refinement without noise, an unusable checkpoint, memory), refuses or tiles a job too
large for memory, fits, refines, and measures the result against a ground truth when the job has one.
"""
from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from deepprior import engine
from deepprior.fitting import Checkpoint, FitResult, IterationState, StoppingRule, fit
from deepprior.imageio import from_tensor, to_tensor
from deepprior.jobs import InputError, Job
from deepprior.measurement import Measurement
from deepprior.presets import Preset, get_preset

__all__ = ["Restored", "Settings", "plan", "restore"]

STOP_NAMES = ("auto", "fixed", "oracle")


@dataclass(frozen=True)
class Settings:
    """How to run a job (everything but the job itself). Frozen and picklable without callbacks, so one
    ``Settings`` travels to every batch worker.

    Attributes
    ----------
    preset : a recipe name, a ``.json`` recipe file or a :class:`Preset`; ``None``: the task's default.
    iterations : run exactly this many steps (``stop`` then defaults to ``"fixed"``); ``None``: the
        recipe's count, as a cap for automatic stopping.
    stop : ``"auto"``, ``"fixed"``, ``"oracle"`` (needs a ground truth; benchmarks only) or a
        :class:`~deepprior.fitting.StoppingRule`; ``None``: ``auto``, or ``fixed`` with ``iterations``.
    seed : the same seed gives the same output on the CPU; ``None`` draws one (recorded).
    device : ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
    precision : ``auto`` (bfloat16 where the device computes it natively), ``bf16`` or ``fp32``.
    refine : the classical stage after the fit (Wiener for denoising, data projection for noiseless
        measurements): ``None`` as the recipe says, ``True`` always, ``False`` never.
    tile, tile_overlap : restore in overlapping ``tile`` x ``tile`` pieces blended smoothly.
    max_memory : refuse runs whose estimated peak is larger (bytes); ``None``: 80 % of the memory free now.
    checkpoint, checkpoint_every, resume : save the fit's whole state every so many steps; continue from it.
    progress : show a progress bar; description : its label.
    callbacks : called with every :class:`~deepprior.fitting.IterationState`; a truthy answer stops the fit.
    max_steps : a server's limit on any run's steps: the recipe's cap is lowered to it (a larger count asked
        for is refused).
    """

    preset: str | Preset | None = None
    iterations: int | None = None
    stop: str | StoppingRule | None = None
    seed: int | None = None
    device: str | torch.device = "auto"
    precision: str = "auto"
    refine: bool | None = None
    tile: int | None = None
    tile_overlap: int = 32
    max_memory: int | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 100
    resume: bool = False
    progress: bool = False
    description: str | None = None
    callbacks: tuple[Callable[[IterationState], Any], ...] = ()
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.iterations is not None and self.iterations < 1:
            raise InputError(f"iterations must be at least 1, got {self.iterations}")
        if isinstance(self.stop, str) and self.stop not in STOP_NAMES:
            raise InputError(f"unknown stopping rule {self.stop!r} (use {', '.join(STOP_NAMES)})")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.tile is not None and self.tile < 32:
            raise InputError(f"tiles must be at least 32 pixels, got {self.tile}")
        if self.tile is not None and self.tile_overlap >= self.tile:
            raise InputError(f"the tile overlap ({self.tile_overlap}) must be smaller than the tile ({self.tile})")
        if self.tile_overlap < 0 or self.checkpoint_every < 1:
            raise InputError("the tile overlap must be >= 0 and the checkpoint interval >= 1")
        if self.max_memory is not None and not self.max_memory > 0:
            raise InputError(f"the memory limit must be positive, got {self.max_memory}")
        if self.resume and not self.checkpoint:
            raise InputError("resume needs the checkpoint file to resume from")


@dataclass
class Plan:
    """What :func:`plan` decided for a job: the recipe, the device and arithmetic, the seed, and the saved
    state to resume from."""

    preset: Preset
    device: torch.device
    precision: str
    seed: int
    resume_state: dict[str, Any] | None = None


@dataclass
class Restored:
    """A restoration's outcome: the image, the fit, and how it was made and measured.

    ``image`` is ``(H, W, C)`` float32 in [0, 1]. ``psnr``, ``input_psnr`` and ``reference_psnr`` (the
    classical reference's, e.g. bicubic) are set when the job has a ground truth.
    """

    job: Job
    image: np.ndarray
    result: FitResult
    seed: int
    preset: Preset
    device: torch.device
    psnr: float | None = None
    input_psnr: float | None = None
    reference_psnr: float | None = None
    tiles: list[dict[str, Any]] = field(default_factory=list)

    def record(self, output: str | None = None) -> dict[str, Any]:
        """The run's record (JSON-ready; see :mod:`deepprior.record`), for the result written to ``output``."""
        from deepprior.record import build_record

        return build_record(self, output=output)


def _resolve_preset(job: Job, settings: Settings) -> Preset:
    from deepprior.tasks import TASKS

    chosen = settings.preset
    if chosen is None:
        task = TASKS.get(job.task)
        chosen = task.preset_for(job) if task is not None else "denoise"
    if isinstance(chosen, Preset):
        preset = chosen
    else:
        try:
            preset = get_preset(chosen)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    preset = preset.with_iterations(settings.iterations)
    if settings.max_steps is not None and preset.fit.iterations > settings.max_steps:
        if settings.iterations is not None:
            raise InputError(f"{settings.iterations} iterations asked for; at most {settings.max_steps} here")
        preset = preset.with_iterations(settings.max_steps)
    sigma = job.measurement.sigma
    if preset.fit.loss == "sure":
        if not sigma:
            raise InputError(f"preset {preset.name!r} fits by SURE, which needs the noise level (sigma > 0)")
        if preset.fit.sure_sigma is None:
            preset = replace(preset, fit=replace(preset.fit, sure_sigma=sigma))
    return preset


def _load_checkpoint(path: str, preset: Preset, image_size: tuple[int, int], precision: str) -> dict[str, Any]:
    try:
        saved = Checkpoint.load(path)
    except FileNotFoundError:
        raise InputError(f"checkpoint '{path}' does not exist") from None
    except Exception:  # a truncated file, another format, a pickle of something else
        raise InputError(f"'{path}' is not a deepprior checkpoint") from None
    if not isinstance(saved, dict) or not {"seed", "net", "iteration"} <= set(saved):
        raise InputError(f"'{path}' is not a deepprior checkpoint")
    found = (saved.get("preset"), tuple(saved.get("image_size", ())), saved.get("precision"))
    if found != (preset.name, tuple(image_size), precision):
        raise InputError(f"checkpoint '{path}' is for another run (recipe, size, precision {found}), "
                         f"not ({preset.name!r}, {tuple(image_size)}, {precision!r})")
    return saved


def _check_memory(job: Job, preset: Preset, settings: Settings, device: torch.device) -> None:
    """Refuse, before any work, a fit (or a tile) that would not fit in the memory budget."""
    from deepprior.memory import available_bytes, format_bytes

    budget = settings.max_memory or int(0.8 * available_bytes(device))
    guide = to_tensor(job.guide) if job.guide is not None else None
    h, w = job.image_size

    def need(size: tuple[int, int]) -> int:
        return engine.estimate_memory(preset, size, job.channels, guide)

    if settings.tile:
        tile_need = need((min(settings.tile, h), min(settings.tile, w)))
        if tile_need > budget:
            raise InputError(f"a {settings.tile}x{settings.tile} tile needs about {format_bytes(tile_need)} but "
                             f"{format_bytes(budget)} is allowed (--max-memory): use a smaller --tile")
        return
    whole = need((h, w))
    if whole > budget:
        fitting = [t for t in (1024, 512, 256, 128, 64) if t < max(h, w) and need((min(t, h), min(t, w))) <= budget]
        advice = (f"add --tile {fitting[0]} to restore it in overlapping tiles" if fitting
                  else "even 64-pixel tiles would not fit")
        raise InputError(f"restoring {w}x{h} needs about {format_bytes(whole)} but {format_bytes(budget)} is allowed "
                         f"(--max-memory, default 80% of the free memory): {advice}")


def plan(job: Job, settings: Settings) -> Plan:
    """Decide and check everything about running ``job`` before any fitting: raises :class:`InputError`
    with one line for whatever would make the run fail or be refused."""
    preset = _resolve_preset(job, settings)
    try:
        device = engine.resolve_device(settings.device)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    precision = engine.resolve_precision(settings.precision, device)
    m = job.measurement
    if preset.input_kind == "image" and job.guide is None:
        raise InputError(f"preset {preset.name!r} needs a guidance image: use it with 'deepprior flash'")
    if preset.input_kind == "measurement" and tuple(m.data.shape[:2]) != tuple(m.image_size):
        raise InputError(f"preset {preset.name!r} feeds the measurement to the network, so it must have the "
                         f"image's size")
    try:
        engine.refinement_for(preset, m, settings.refine)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if settings.stop == "oracle" and job.ground_truth is None:
        raise InputError("the oracle stopping rule needs a ground truth")
    if settings.tile and (settings.checkpoint or job.ground_truth is not None):
        raise InputError("tiled runs take no checkpoint and no ground truth")
    saved = None
    if settings.resume:
        assert settings.checkpoint is not None
        saved = _load_checkpoint(settings.checkpoint, preset, m.image_size, precision)
    _check_memory(job, preset, settings, device)
    seed = saved["seed"] if saved is not None else settings.seed
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    return Plan(preset, device, precision, seed, saved)


def _fit(measurement: Measurement, guide: np.ndarray | None, ground_truth: np.ndarray | None, job_plan: Plan,
         settings: Settings, description: str) -> FitResult:
    """One fit of ``measurement`` and, when the recipe or the settings ask for it, its Wiener stage; through the
    noise model's variance-stabilising transform when it has one (Poisson noise)."""
    stabiliser = getattr(measurement.noise, "stabiliser", None)
    if stabiliser is not None:
        return _fit_stabilised(measurement, stabiliser, guide, job_plan, settings, description)
    preset, device = job_plan.preset, job_plan.device
    if settings.iterations is None:  # a recipe with a pixel budget spends fewer steps on a large image (or tile)
        preset = preset.for_size(measurement.image_size)
    if device.type == "cuda":  # one input size for thousands of steps: let cuDNN pick its fastest kernels once
        torch.backends.cudnn.benchmark = True
    y = measurement.tensor()
    guide_t = to_tensor(guide) if guide is not None else None
    if preset.input_kind == "measurement":
        guide_t = y
    elif preset.input_kind == "estimate":  # the operator's classical first guess (a fill, an interpolation)
        with torch.no_grad():
            guide_t = measurement.operator.first_guess(y, (1, measurement.channels, *measurement.image_size))
    gt = to_tensor(ground_truth) if ground_truth is not None else None
    setup = engine.set_up(preset, measurement.channels, measurement.image_size, job_plan.seed, device, guide_t)
    rule = engine.choose_rule(settings.stop, preset, measurement, iterations_given=settings.iterations is not None)
    checkpoint = None
    if settings.checkpoint:
        checkpoint = Checkpoint(settings.checkpoint, settings.checkpoint_every,
                                meta={"seed": job_plan.seed, "preset": preset.name,
                                      "image_size": tuple(measurement.image_size), "precision": job_plan.precision})
    result = fit(setup.net, setup.net_input, y.to(device), measurement.operator, preset.fit, frame=setup.frame,
                 ground_truth=gt, callbacks=settings.callbacks, stopping=rule, generator=setup.generator,
                 progress=settings.progress, description=description, precision=job_plan.precision,
                 channels_last=job_plan.precision == "bf16", checkpoint=checkpoint, resume=job_plan.resume_state)
    stage = engine.refinement_for(preset, measurement, settings.refine)
    if stage == "wiener":
        assert measurement.sigma
        # a fixed-length fit (camera noise) is complete unless the pixel budget shortened it
        complete = preset.fit.iterations >= job_plan.preset.fit.iterations if measurement.noise.fixed_length else None
        engine.wiener_stage(result, y, measurement.sigma, gt, passes=preset.collaborative_passes,
                            mixture_share=preset.mixture_share, complete=complete)
    elif stage == "project":
        engine.projection_stage(result, y, measurement.operator.to(result.fitted.device), gt,
                                preset.classical_weight, preset.collaborative_levels,
                                preset.collaborative_final_levels)
    return result


def _fit_stabilised(measurement: Measurement, stabiliser: Any, guide: np.ndarray | None, job_plan: Plan,
                    settings: Settings, description: str) -> FitResult:
    """Fit the variance-stabilised measurement, whose noise is Gaussian of the stabiliser's level, and bring every
    output back by the exact unbiased inverse (:mod:`deepprior.stabilise`). A ground truth is compared with the
    result only (the fit's own history has no PSNR: it runs in the other domain)."""
    from deepprior.noise import GaussianNoise

    inner = replace(measurement, data=stabiliser.forward(measurement.data),
                    noise=GaussianNoise(measurement.sigma, "stabilised"))
    result = _fit(inner, guide, None, job_plan, settings, description)

    def back(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        return torch.from_numpy(stabiliser.inverse(t.detach().float().cpu().numpy())).to(t.device, t.dtype)

    result.image, result.average = back(result.image), back(result.average)
    result.selected, result.refined = back(result.selected), back(result.refined)
    result.refinement["stabilised"] = {"transform": "generalised Anscombe", "inverse": "exact unbiased",
                                       "sigma": round(measurement.sigma, 6),
                                       "nominal_sigma": round(stabiliser.sigma, 6)}
    return result


def _fit_tiles(job: Job, job_plan: Plan, settings: Settings) -> tuple[np.ndarray, FitResult, list[dict[str, Any]]]:
    """Restore ``job`` tile by tile (see :mod:`deepprior.tiling`): the image, a summary result, the tiles."""
    from deepprior.tiling import assemble, tile_boxes

    assert settings.tile is not None
    h, w = job.image_size
    multiple = job.details.get("scale", 1)
    tile = max(settings.tile // multiple * multiple, multiple)  # super-resolution tiles align to the scale
    overlap = max(settings.tile_overlap // multiple * multiple, multiple)
    boxes = tile_boxes(h, w, tile, overlap, multiple)
    pieces, tiles = [], []
    total = FitResult(image=torch.empty(0), average=None, stop_reason=f"tiled: {len(boxes)} tiles")
    for index, box in enumerate(boxes, 1):
        try:
            part = job.measurement.restrict(box)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        guide = job.guide[box.top : box.top + box.height, box.left : box.left + box.width] if job.guide is not None \
            else None
        result = _fit(part, guide, None, job_plan, settings, f"{job.task} tile {index}/{len(boxes)}")
        pieces.append((box, from_tensor(result.output.cpu())))
        tiles.append({"top": box.top, "left": box.left, "height": box.height, "width": box.width,
                      "iterations_run": result.iterations_run, "stop_iteration": result.stop_iteration,
                      "stop_reason": result.stop_reason, "seconds": round(result.seconds, 3)})
        total.iterations_run += result.iterations_run
        total.seconds += result.seconds
        total.parameters, total.precision = result.parameters, result.precision
        total.refinement = result.refinement
    total.stopping = {"tiles": tiles, "tile": tile, "overlap": overlap}
    total.stop_iteration = max(t["stop_iteration"] for t in tiles)
    return assemble(h, w, job.channels, overlap, pieces), total, tiles


def _psnr(reference: np.ndarray | None, estimate: np.ndarray | None) -> float | None:
    from deepprior.metrics import psnr

    if reference is None or estimate is None or reference.shape != estimate.shape:
        return None
    value = psnr(reference, estimate)
    return value if math.isfinite(value) else None


def restore(job: Job, settings: Settings = Settings(), checked: Plan | None = None) -> Restored:
    """Restore ``job``: check it (:func:`plan`, unless ``checked`` is its plan already), fit (in tiles when
    asked), refine, and measure.

    >>> from deepprior.tasks import job_from_arrays
    >>> from deepprior.jobs import TaskOptions
    >>> job = job_from_arrays("denoise", {"image": np.full((32, 32, 1), 0.5)}, TaskOptions(sigma=0.1))
    >>> out = restore(job, Settings(iterations=2, seed=0))
    >>> out.image.shape, out.result.iterations_run, out.preset.name
    ((32, 32, 1), 2, 'fast')
    """
    job_plan = checked or plan(job, settings)
    tiles: list[dict[str, Any]] = []
    if settings.tile:
        image, result, tiles = _fit_tiles(job, job_plan, settings)
    else:
        description = settings.description or f"{job.task} ({job_plan.preset.name})"
        result = _fit(job.measurement, job.guide, job.ground_truth, job_plan, settings, description)
        image = from_tensor(result.output.cpu())
    gt = job.ground_truth
    reference = job.reference[1] if job.reference is not None else None
    return Restored(job, image, result, job_plan.seed, job_plan.preset, job_plan.device, psnr=_psnr(gt, image),
                    input_psnr=_psnr(gt, job.baseline), reference_psnr=_psnr(gt, reference), tiles=tiles)
