"""A restoration running in the background for the web app: started from
uploaded files, watched while it runs, stopped on demand.

It has no Gradio in it, so it can be tested on its own. The job is built by
the task registry and run by the one pipeline, as the command line's is, so
the web app accepts, refuses and words problems exactly as the CLI does.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepprior.fitting import IterationState
from deepprior.imageio import ImageError, from_tensor, image_size
from deepprior.jobs import InputError, TaskOptions
from deepprior.outputs import write_result
from deepprior.pipeline import Plan, Settings, plan, restore
from deepprior.presets import PRESETS
from deepprior.tasks import TASKS, JobSpec, build_job

__all__ = ["InputProblem", "RestoreRun", "Snapshot", "step_cost", "web_tasks"]

STOPPED_BY_USER = "stopped from the page"

_STEP_COSTS: dict[tuple[str, int, str, str], tuple[float, float]] = {}
_STEP_COSTS_LOCK = threading.Lock()

#: Below this many pixels a fit run in a thread other than the main one (as every web run is) is fastest on
#: one core. Measured on the 2-core development machine, ``fast`` in bf16, seconds per step in a thread with
#: two cores against one: 0.10 / 0.037 at 96x96, 0.083 / 0.043 at 128x128, 0.14 / 0.11 at 256x256, 0.47 /
#: 0.51 at 512x512 (in the main thread with two: 0.040, 0.050, 0.11, 0.41): OpenMP's parallel regions cost
#: far more when started from a second thread, and a small image's step is hundreds of small ones.
ONE_CORE_PIXELS = 400 * 400


def _use_cores_for(pixels: int) -> None:
    """Set this thread's CPU threads for a fit of ``pixels`` pixels (see :data:`ONE_CORE_PIXELS`)."""
    torch.set_num_threads(1 if pixels < ONE_CORE_PIXELS else max(1, os.cpu_count() or 1))


def step_cost(preset: Any, channels: int, device: torch.device, precision: str) -> tuple[float, float]:
    """``(fixed seconds, seconds per pixel)`` of one step of ``preset`` on this server, measured once
    (:func:`deepprior.engine.measure_step_seconds`) and remembered."""
    from deepprior.engine import measure_step_seconds

    key = (preset.name, channels, str(device), precision)
    with _STEP_COSTS_LOCK:
        if key not in _STEP_COSTS:
            _use_cores_for(0)  # the probes are small images, fitted as a small upload would be
            _STEP_COSTS[key] = measure_step_seconds(preset, channels, device, precision)
        return _STEP_COSTS[key]


def web_tasks() -> list[str]:
    """The registered tasks the web page offers."""
    return [name for name, task in TASKS.items() if task.web is not None]


class InputProblem(ValueError):
    """Something wrong with what the user sent, worded for the page."""


@dataclass
class Snapshot:
    """What the page shows while a run goes on."""

    iteration: int = 0
    cap: int = 0
    elapsed: float = 0.0
    curves: list[tuple[int, str, float]] = field(default_factory=list)  # (iteration, series, value)
    preview: np.ndarray | None = None
    finished: bool = False
    error: str | None = None
    stopped: bool = False

    settled: tuple[int, float] | None = None  # (iteration, elapsed) once the first, slower steps are over

    @property
    def seconds_left(self) -> float | None:
        """At most this long to go: the cap, at the pace since the first few steps (which set up the
        arithmetic and are slower), so that the estimate does not jump about (an automatic stop may come
        sooner)."""
        if self.iteration == 0 or self.finished:
            return None
        first, at = self.settled if self.settled and self.iteration > self.settled[0] else (0, 0.0)
        return (self.elapsed - at) / (self.iteration - first) * max(self.cap - self.iteration, 0)


class RestoreRun:
    """One restoration: validated at construction, run in a thread by :meth:`start`.

    Parameters
    ----------
    task : a registered task the web page offers (:func:`web_tasks`).
    image : path of the uploaded image.
    workdir : a private folder for this run's outputs.
    mask : path of the mask (inpainting: white = known, black = to fill).
    preset, scale, sigma (0-255 scale), noise, peak, kernel, iterations, seed : as on the command line, each
        used only by the tasks that take it; ``iterations=None`` stops automatically.
    max_pixels : refuse larger images (checked from the header, before decoding).
    max_steps : this server's limit on a run's steps (``None``: the recipe's own cap).
    preview_every : seconds between preview images.
    """

    def __init__(self, task: str, image: str, workdir: Path, *, mask: str | None = None, preset: str | None = None,
                 scale: int | None = None, sigma: float | None = None, noise: str | None = None,
                 peak: float | None = None, kernel: str | None = None,
                 iterations: int | None = None, seed: int | None = None, max_pixels: int = 1_000_000,
                 preview_every: float = 1.0, device: str = "auto", max_steps: int | None = None) -> None:
        if task not in web_tasks():
            raise InputProblem(f"unknown task {task!r} (use {', '.join(web_tasks())})")
        if not image:
            raise InputProblem("no image uploaded")
        for what, path in (("image", image), ("mask", mask)):
            if path is not None:
                _check_size(path, what, max_pixels)
        if preset is not None and preset not in PRESETS:  # names only: a web user must not point at server files
            raise InputProblem(f"unknown recipe {preset!r} (use one of: {', '.join(PRESETS)})")
        if iterations is not None and iterations < 1:
            raise InputProblem(f"iterations must be at least 1, got {iterations}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        takes = TASKS[task].takes
        files = {"image": image, **({"mask": mask} if mask is not None else {})}
        try:
            options = TaskOptions(sigma=sigma / 255 if sigma is not None and "sigma" in takes else None,
                                  noise=noise if noise and "noise" in takes else "auto",
                                  peak=peak if "peak" in takes else None,
                                  scale=int(scale) if scale is not None and "scale" in takes else None,
                                  kernel=kernel if "kernel" in takes else None)
            self.job = build_job(JobSpec(task, files, options))
            self.settings = Settings(preset=preset, iterations=iterations, seed=seed, device=device,
                                     callbacks=(self._watch,), description=task, max_steps=max_steps)
            self.plan: Plan = plan(self.job, self.settings)
            self.settings = replace(self.settings, seed=self.plan.seed)  # the run uses the seed checked here
        except (InputError, ImageError, ValueError) as exc:  # name the upload, not its temporary path
            message = str(exc).replace(f"'{image}'", "the image")
            raise InputProblem(message.replace(f"'{mask}'", "the mask") if mask else message) from None
        h, w = self.job.image_size
        if h * w > max_pixels * (int(scale) ** 2 if "scale" in takes and scale else 1):
            raise InputProblem(f"the result would be {w}x{h}, above this server's limit")
        self.task = task
        self.preset = self.plan.preset
        self.device = self.plan.device
        self.iterations = iterations
        self.input_name = Path(image).name
        self.result_name = f"{Path(image).stem}-{TASKS[task].web.result_word}.png"
        self.expected_steps = iterations or self.preset.for_size(self.job.image_size).fit.iterations
        self.warning: str | None = None
        self.sigma = self.job.measurement.sigma
        self.preview_every = preview_every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._snapshot = Snapshot(cap=self.expected_steps)
        self._last_preview = 0.0
        self._thread: threading.Thread | None = None
        self.result: Any = None
        self.output_path: Path | None = None
        self.record_path: Path | None = None

    def expected_seconds(self) -> float:
        """About how long the fit will take here at most: its step cap times the step cost measured on this
        server for an image of this size (an automatic stop often ends it sooner)."""
        fixed, per_pixel = step_cost(self.preset, self.job.channels, self.device, self.plan.precision)
        height, width = self.job.image_size
        return self.expected_steps * (fixed + per_pixel * height * width)

    # ------------------------------------------------------------- control
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=f"deepprior-{self.task}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the run to end at its next iteration; it keeps its best result so far."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    @property
    def finished(self) -> bool:
        return self._snapshot.finished

    def snapshot(self) -> Snapshot:
        with self._lock:
            snap = self._snapshot
            return Snapshot(snap.iteration, snap.cap, snap.elapsed, list(snap.curves),
                            None if snap.preview is None else snap.preview.copy(), snap.finished, snap.error,
                            snap.stopped, snap.settled)

    # ------------------------------------------------------------- work
    def _watch(self, state: IterationState) -> str | None:
        now = time.perf_counter()
        with self._lock:
            snap = self._snapshot
            snap.iteration, snap.elapsed = state.iteration, state.seconds
            if snap.settled is None and state.iteration >= min(10, max(snap.cap // 10, 1)):
                snap.settled = (state.iteration, state.seconds)
            every = max(1, snap.cap // 300)  # a few hundred points are plenty for a plot
            if state.iteration % every == 0 or state.iteration == 1:
                snap.curves.append((state.iteration, "loss", state.loss))
                snap.curves.extend((state.iteration, name, value) for name, value in state.monitor.items())
            if now - self._last_preview >= self.preview_every:
                shown = state.average if state.average is not None else state.output
                snap.preview = from_tensor(shown.cpu())
                self._last_preview = now
        return STOPPED_BY_USER if self._stop.is_set() else None

    def _work(self) -> None:
        try:
            _use_cores_for(self.job.image_size[0] * self.job.image_size[1])
            restored = restore(self.job, self.settings, self.plan)  # checked when the run was made
            self.output_path = self.workdir / self.result_name
            self.record_path = self.output_path.with_suffix(".json")
            write_result(restored, str(self.output_path), str(self.record_path), names_only=True)
            self.warning = worse_than_input(restored)
            self.result = restored.result
            with self._lock:
                self._snapshot.stopped = restored.result.stop_reason == STOPPED_BY_USER
            with self._lock:
                self._snapshot.preview = restored.image
        except Exception as exc:  # the page shows it; the server goes on
            with self._lock:
                self._snapshot.error = f"the run failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        finally:
            _give_back_memory()
            with self._lock:
                self._snapshot.finished = True


def _give_back_memory() -> None:
    """Hand the finished run's freed memory back to the system. Each run works on a thread of its own, and
    glibc keeps what a thread freed in that thread's arena; without this a server's resident memory grew by
    about 60 % over 116 small jobs (``bench/web_soak.py``)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


def _check_size(path: str, what: str, max_pixels: int) -> None:
    try:
        width, height = image_size(path)
    except ImageError as exc:  # the reader's reason, naming the upload by its own name, not the server's path
        reason = str(exc).partition("': ")[2] or str(exc)
        raise InputProblem(f"the {what} cannot be read: {reason.replace(path, os.path.basename(path))}") from None
    if width * height > max_pixels:
        raise InputProblem(f"the {what} is too large: {width}x{height} ({width * height / 1e6:.1f} megapixels); "
                           f"this server takes at most {max_pixels / 1e6:.1f} megapixels")


def worse_than_input(restored: Any) -> str | None:
    """A warning when the result fits the measurement worse than the input itself does, by the run's own
    measure (the mean squared data misfit ``|A x - y|^2``; no ground truth): for tasks whose measurement is the
    image's size seen through an operator (deblurring), where the input is itself a candidate answer. A fit
    stopped very early can leave such a result; for denoising and JPEG cleanup the input fits its own
    measurement exactly, and super-resolution and inpainting results are put back onto their measurement."""
    job = restored.job
    m = job.measurement
    if m.direct or tuple(m.data.shape[:2]) != tuple(m.image_size):
        return None
    y = m.tensor()
    with torch.no_grad():
        def misfit(image: np.ndarray) -> float:
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
            return float(torch.mean((m.operator(x) - y) ** 2))

        result, start = misfit(restored.image), misfit(m.data)
    if result <= start:
        return None
    return (f"the result fits the input worse than the input itself does (misfit {np.sqrt(result) * 255:.1f} "
            f"against {np.sqrt(start) * 255:.1f} grey levels): the fit ended too early to help; run it longer")
