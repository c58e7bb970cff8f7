"""The task registry: one entry per restoration task, read by every interface.

An entry says what a task is called, which images it takes, which options, how its job is built, its
noise model (and so its family of automatic stopping), its default recipe, and how the web page shows it.
The command line's subcommands, the web app's task list and controls, ``deepprior batch --task``,
``deepprior presets`` and :func:`deepprior.api.run_task` are all generated from it. Adding a task is
one :class:`Task` passed to :func:`register_task` plus its job builder (see ``docs/design.md``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from deepprior import jobs
from deepprior.imageio import Image
from deepprior.jobs import InputError, Job, TaskOptions
from deepprior.noise import CameraNoise, GaussianNoise, ImpulseNoise, PoissonNoise

__all__ = [
    "TASKS",
    "JobSpec",
    "Slot",
    "Task",
    "WebControls",
    "build_job",
    "get_task",
    "job_from_arrays",
    "presets_for",
    "register_task",
    "unregister_task",
]

#: Controls the web page can show for a task.
WEB_CONTROLS = ("mask", "scale", "blur", "sigma", "noise", "peak")
#: Noise models a task's measurement can carry; "gaussian" stops at the noise level, "none" when the output settles.
NOISE_MODELS = ("none", "gaussian")
#: The smallest input image, in pixels a side, that any task accepts (a 1x1 "photo" is a mistake, not a job).
MIN_INPUT_SIDE = 8


@dataclass(frozen=True)
class Slot:
    """One input image of a task: its role (the key of :attr:`JobSpec.files`), its help text, and whether the
    command line takes it as the positional argument (else as ``--role``)."""

    role: str
    help: str
    positional: bool = False


@dataclass(frozen=True)
class WebControls:
    """How the web page offers a task: its label, which of :data:`WEB_CONTROLS` it shows, and the word its
    download is named with (``photo.jpg`` gives ``photo-denoised.png``)."""

    label: str
    controls: tuple[str, ...] = ()
    result_word: str = "restored"


@dataclass(frozen=True)
class Task:
    """A restoration task.

    Attributes
    ----------
    name : the subcommand and the name everywhere else.
    summary : one line, for help texts.
    build : the job builder: decoded input images by role and the options -> :class:`~deepprior.jobs.Job`.
    inputs : the input images.
    options : which of ``scale`` and ``kernel`` it takes (``sigma`` comes with a Gaussian noise model).
    required : options that must be given.
    noise : ``"gaussian"``: the measurement is noisy, with a given or estimated level, and automatic
        stopping ends the fit when it reaches that level; ``"none"``: clean, and it stops when the output
        settles.
    presets : the :attr:`Preset.task` families of the recipes that suit it.
    default_preset : the recipe used when none is named: a name, or a function of the job.
    example : one command line, for help texts.
    web : how the web page shows it (``None``: not offered there).
    batch : offered by ``deepprior batch`` (tasks of one image, or an image and its mask).
    """

    name: str
    summary: str
    build: Callable[[Mapping[str, Image], TaskOptions], Job]
    inputs: tuple[Slot, ...] = (Slot("image", "the image to restore", positional=True),)
    options: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    noise: str = "none"
    presets: tuple[str, ...] = ()
    default_preset: str | Callable[[Job], str] = "denoise"
    example: str = ""
    web: WebControls | None = None
    batch: bool = True
    option_help: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODELS:
            raise ValueError(f"task {self.name!r}: noise must be one of {', '.join(NOISE_MODELS)}")
        unknown = set(self.options) - {"scale", "kernel"}
        if unknown or not set(self.required) <= set(self.options):
            raise ValueError(f"task {self.name!r}: options are scale and kernel, and required ones must be options")
        if self.web is not None and not set(self.web.controls) <= set(WEB_CONTROLS):
            raise ValueError(f"task {self.name!r}: web controls are {', '.join(WEB_CONTROLS)}")

    @property
    def stopping(self) -> str:
        """The family of automatic stopping that applies: ``"discrepancy"`` or ``"settle"``."""
        return "discrepancy" if self.noise == "gaussian" else "settle"

    @property
    def takes(self) -> tuple[str, ...]:
        """Every option it takes, ``sigma``, ``noise`` and ``peak`` included when its measurement is noisy."""
        return (("sigma", "noise", "peak") if self.noise == "gaussian" else ()) + self.options

    def preset_for(self, job: Job) -> str:
        return self.default_preset(job) if callable(self.default_preset) else self.default_preset


_REGISTRY: dict[str, Task] = {}
#: The registered tasks by name (read-only view; use :func:`register_task`).
TASKS: Mapping[str, Task] = MappingProxyType(_REGISTRY)


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry (a name may be registered once)."""
    if task.name in _REGISTRY:
        raise ValueError(f"a task named {task.name!r} is already registered")
    _REGISTRY[task.name] = task
    return task


def ensure_registered(task: Task) -> Task:
    """``task`` in this process's registry: a batch worker receives the driver's entry, so a task registered
    at run time (a plug-in's, a test's) is known there too."""
    return _REGISTRY.setdefault(task.name, task)


def unregister_task(name: str) -> None:
    """Remove a task (for tests and plug-ins that register one for a while)."""
    _REGISTRY.pop(name, None)


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown task {name!r} (use {', '.join(_REGISTRY)})") from None


def presets_for(task: Task | str) -> list[str]:
    """The names of the recipes that suit ``task``."""
    from deepprior.presets import PRESETS

    task = get_task(task) if isinstance(task, str) else task
    return [name for name, preset in PRESETS.items() if preset.task in task.presets]


@dataclass(frozen=True)
class JobSpec:
    """A job as data (picklable, so batch workers receive it): the task, its input files by role, its
    options, and an optional ground truth file."""

    task: str
    files: Mapping[str, str]
    options: TaskOptions = TaskOptions()
    ground_truth: str | None = None


def _finish(task: Task, images: Mapping[str, Image], options: TaskOptions) -> Job:
    """Check the options against the task, build its job, and attach the task's noise model."""
    given = set(options.given()) - set(task.takes)
    if given:
        raise InputError(f"{', '.join(sorted(given))} does not apply to {task.name}")
    missing = [name for name in task.required if getattr(options, name) is None]
    if missing:
        raise InputError(f"{task.name} needs {', '.join(missing)}")
    for role, image in images.items():
        height, width = image.pixels.shape[:2]
        if min(height, width) < MIN_INPUT_SIDE:
            which = f"'{image.path}'" if image.path else f"the {role.replace('_', '-')}"
            raise InputError(f"{which} is only {width}x{height} pixels; the smallest image deepprior takes is "
                             f"{MIN_INPUT_SIDE}x{MIN_INPUT_SIDE}")
    job = task.build(images, options)
    if task.noise == "gaussian":
        _attach_noise(job, options, images[task.inputs[0].role].jpeg_quality)
    return job


def _attach_noise(job: Job, options: TaskOptions, jpeg_quality: int | None) -> None:
    """Give a noisy measurement its noise model: the one named, or for ``auto`` salt-and-pepper noise where the
    image shows it (:func:`deepprior.impulse.looks_like_salt_and_pepper`), a camera's noise where the image is a
    JPEG (``jpeg_quality``, from its quantisation tables) whose white-noise estimate is below
    :data:`~deepprior.noise.CAMERA_WHITE_BELOW` (:class:`~deepprior.noise.CameraNoise`), and Gaussian noise of
    the estimated level otherwise. The values salt-and-pepper noise replaced are then restored as missing pixels:
    the measurement becomes an inpainting one, with a mask per channel."""
    from deepprior.impulse import looks_like_salt_and_pepper, salt_and_pepper_known
    from deepprior.noise import CAMERA_LEVEL, CAMERA_WHITE_BELOW
    from deepprior.operators import Mask

    m = job.measurement
    choice, source = options.noise, "given"
    if choice == "auto" and options.sigma is None and m.direct and looks_like_salt_and_pepper(m.data) is not None:
        choice, source = "impulse", "detected"
    if choice != "gaussian" and choice != "auto" and not m.direct:
        raise InputError(f"{choice} noise is restored on the noisy image itself (denoise), not through "
                         f"{job.task}'s operator")
    if choice in ("poisson", "poisson-gaussian"):
        assert options.peak is not None
        noise = PoissonNoise(options.peak, (options.sigma or 0.0) * options.peak)
        job.measurement = replace(m, noise=noise.measured_on(m.data))
        return
    if choice == "impulse":
        known = salt_and_pepper_known(m.data)
        if not known.any():
            raise InputError("every value of the image is black or white: nothing is left to restore from")
        job.measurement = replace(m, operator=Mask(known), noise=ImpulseNoise(1 - float(known.mean()), source))
        job.details.update({"known_fraction": round(float(known.mean()), 6), "largest_gap": jobs.largest_gap(known)})
        return
    if options.sigma is not None and choice != "camera":
        job.measurement = replace(m, noise=GaussianNoise(options.sigma))
        return
    white = GaussianNoise.estimate(m.data)
    camera_jpeg = m.direct and jpeg_quality is not None and white.sigma < CAMERA_WHITE_BELOW
    if choice == "camera" or (choice == "auto" and camera_jpeg):
        level = options.sigma if options.sigma is not None else CAMERA_LEVEL
        noise = CameraNoise(level, white.sigma, jpeg_quality, "given" if choice == "camera" else "detected")
        job.measurement = replace(m, noise=noise)
        return
    job.measurement = replace(m, noise=white)


def _read(path: str | None, role: str) -> Image:
    from deepprior.imageio import read_image

    if path is None:
        raise InputError(f"no {role.replace('_', '-')} image given")
    return read_image(path)


def build_job(spec: JobSpec) -> Job:
    """Read ``spec``'s files and build its job; :class:`InputError` (or ``ImageError``) says what is wrong."""
    task = get_task(spec.task)
    images = {slot.role: _read(spec.files.get(slot.role), slot.role) for slot in task.inputs}
    job = _finish(task, images, spec.options)
    if spec.ground_truth:
        job.ground_truth = _ground_truth(job, _read(spec.ground_truth, "ground-truth").pixels,
                                         f"ground truth '{spec.ground_truth}'")
        job.inputs.append(spec.ground_truth)
    return job


def job_from_arrays(task_name: str, arrays: Mapping[str, np.ndarray], options: TaskOptions = TaskOptions(),
                    ground_truth: np.ndarray | None = None) -> Job:
    """The job of ``task_name`` from ``(H, W, C)`` float arrays in [0, 1] by role (the NumPy API's way in)."""
    task = get_task(task_name)
    images = {slot.role: Image(np.asarray(arrays[slot.role], dtype=np.float32)) for slot in task.inputs}
    job = _finish(task, images, options)
    if ground_truth is not None:
        job.ground_truth = _ground_truth(job, ground_truth, "ground_truth")
    return job


def _ground_truth(job: Job, pixels: np.ndarray, what: str) -> np.ndarray:
    if pixels.shape[:2] != tuple(job.image_size):
        gh, gw = pixels.shape[:2]
        raise InputError(f"{what} is {gw}x{gh} but the output will be {job.image_size[1]}x{job.image_size[0]}")
    return jobs.match_channels(pixels, job.channels, what)


def _denoise_preset(job: Job) -> str:
    from deepprior.presets import default_denoise_preset

    if isinstance(job.measurement.noise, ImpulseNoise):  # the replaced values are missing pixels
        return _inpaint_preset(job)
    if isinstance(job.measurement.noise, CameraNoise):
        return "fast-camera"
    sigma = job.measurement.sigma
    return default_denoise_preset((sigma or 0.0) * 255)


def _superres_preset(job: Job) -> str:
    return "fast-superres-x8" if job.details["scale"] >= 8 else "fast-superres"


#: Gap (pixels from the farthest unknown pixel to a known one) up to which a mask is scattered pixels or thin
#: strokes, filled by ``fast-inpaint``; wider holes go to the skip-free ``inpaint-deep``. Half the pixels missing
#: at random give about 3, 90 % about 6.5, the paper's text mask (kate) 3.6, its hole masks (vase, library) 23 and 35.
THIN_GAP = 8.0


def _inpaint_preset(job: Job) -> str:
    return "fast-inpaint" if job.details.get("largest_gap", 0.0) <= THIN_GAP else "inpaint-deep"


_NOISE_HELP = "the noise level on the 0-255 scale (estimated from the image when not given)"

for _task in (
    Task("denoise", "Remove noise from an image.", jobs.denoise_job, noise="gaussian", presets=("denoise",),
         default_preset=_denoise_preset, example="deepprior denoise noisy.png -o clean.png --sigma 25",
         web=WebControls("Denoise", ("sigma", "noise", "peak"), "denoised"),
         option_help={"sigma": _NOISE_HELP + "; 40 or more picks 'denoise-50'"}),
    Task("superres", "Upscale an image by an integer factor.", jobs.superres_job,
         inputs=(Slot("image", "the low-resolution image", positional=True),), options=("scale", "kernel"),
         required=("scale",), presets=("superres",), default_preset=_superres_preset,
         example="deepprior superres small.png -o large.png --scale 4", web=WebControls("Super-resolve", ("scale",), "upscaled"),
         option_help={"kernel": "downsampling model: lanczos2 (paper), lanczos3, bicubic, box, gauss"}),
    Task("inpaint", "Fill in the damaged or missing parts of an image.", jobs.inpaint_job,
         inputs=(Slot("image", "the damaged image", positional=True),
                 Slot("mask", "mask image of the same size: white = known, black = to fill")),
         presets=("inpaint", "restore"), default_preset=_inpaint_preset,
         example="deepprior inpaint photo.png --mask mask.png -o filled.png   (mask: white = known)",
         web=WebControls("Inpaint (fill a mask)", ("mask",), "filled")),
    Task("deblur", "Remove a known blur.", jobs.deblur_job, options=("kernel",), required=("kernel",),
         noise="gaussian", presets=("deblur",), default_preset="deblur",
         example="deepprior deblur blurry.png -o sharp.png --kernel gaussian:1.6",
         web=WebControls("Deblur (Gaussian blur)", ("blur", "sigma"), "deblurred"),
         option_help={"kernel": "gaussian:SIGMA, or a kernel file (.npy or a grey image)",
                      "sigma": _NOISE_HELP + "; automatic stopping ends the fit when it reaches the noise"}),
    Task("dejpeg", "Remove JPEG blocking and ringing.", jobs.dejpeg_job, presets=("dejpeg",), default_preset="dejpeg",
         example="deepprior dejpeg blocky.jpg -o clean.png", web=WebControls("Remove JPEG artefacts", (), "cleaned")),
    Task("flash", "Combine a flash / no-flash pair: no-flash lighting, flash detail.", jobs.flash_job,
         inputs=(Slot("flash", "the photo taken with flash"), Slot("no_flash", "the photo taken without flash")),
         presets=("flash",), default_preset="flash", example="deepprior flash --flash f.jpg --no-flash nf.jpg -o out.png",
         batch=False),
):
    register_task(_task)


def describe(task: Task) -> dict[str, Any]:
    """What the registry says of a task, for ``deepprior presets`` and docs."""
    return {"task": task.name, "inputs": [s.role for s in task.inputs], "options": list(task.takes),
            "stopping": task.stopping, "presets": presets_for(task), "web": task.web is not None, "batch": task.batch}
