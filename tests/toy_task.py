"""A task that exists only for the tests: denoise a photo as a grey image. It is what adding a task takes:
one job builder and one registry entry (importable, so batch workers can receive it)."""
from __future__ import annotations

from collections.abc import Mapping

from deepprior.imageio import Image
from deepprior.jobs import Job, TaskOptions
from deepprior.measurement import Measurement
from deepprior.tasks import Task


def grey_denoise_job(images: Mapping[str, Image], options: TaskOptions) -> Job:
    img = images["image"]
    grey = img.pixels.mean(axis=2, keepdims=True)
    return Job("denoise-grey", Measurement(grey), [img.path] if img.path else [], img.bit_depth, baseline=grey)


TOY = Task("denoise-grey", "Denoise a photo as a grey image.", grey_denoise_job, noise="gaussian",
           presets=("denoise",), default_preset="fast", example="deepprior denoise-grey in.png -o out.png")
