"""Restoring one batch item, in whatever process runs it (a local worker or a Ray task).

The item travels as data (its task options and run settings as dataclasses,
its image as bytes) and comes back as bytes, so a worker needs no access to
the driver's folders (a Ray node need not share a file system). It builds the
job through the task registry and runs the one pipeline, as ``deepprior TASK
input -o output`` does, so a batch output equals the single-image command's
output for the same seed.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from deepprior.jobs import InputError, TaskOptions
from deepprior.pipeline import Settings
from deepprior.tasks import Task

__all__ = ["ItemOutcome", "ItemRequest", "restore_item"]


@dataclass(frozen=True)
class ItemRequest:
    """What a worker needs for one image: the job as data (the task, its options, the image and mask bytes)
    and the run settings every item shares."""

    task: str
    key: str  # the input's path relative to the input folder
    data: bytes
    output_name: str  # file name of the output (its extension picks the format)
    options: TaskOptions
    settings: Settings
    mask_key: str | None = None
    mask_data: bytes | None = None
    threads: int = 1
    device: str = "auto"
    entry: Task | None = None  # the driver's registry entry of the task


@dataclass(frozen=True)
class ItemOutcome:
    """What came of one attempt. ``retry`` marks failures that another attempt may cure (a crash, memory)."""

    key: str
    ok: bool
    worker: str
    output: bytes | None = None
    seconds: float = 0.0
    iterations: int = 0
    stop_iteration: int = 0
    stop_reason: str = ""
    error: str | None = None
    retry: bool = False
    interrupted: bool = False


def worker_name() -> str:
    """``host:pid`` of this process, and inside a Ray task also its node (``host/node:pid``), so the event
    log shows which node of a cluster finished each image, even when several nodes share one host."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        node = ray.get_runtime_context().get_node_id()
        if node:
            return f"{socket.gethostname()}/{node[:12]}:{os.getpid()}"
    return f"{socket.gethostname()}:{os.getpid()}"


def restore_item(request: ItemRequest) -> ItemOutcome:
    """Run ``request``'s job through the pipeline; never raises for a problem with the item itself."""
    import torch

    from deepprior.imageio import ImageError
    from deepprior.outputs import write_result
    from deepprior.pipeline import restore
    from deepprior.tasks import JobSpec, build_job, ensure_registered

    if request.entry is not None:
        ensure_registered(request.entry)
    torch.set_num_threads(request.threads)
    me = worker_name()
    with tempfile.TemporaryDirectory(prefix="deepprior-item-") as tmp:
        shown: dict[str, str] = {}  # temporary folder -> the folder the user knows, for error messages

        def place(kind: str, key: str, data: bytes) -> str:
            folder = os.path.join(tmp, kind)
            os.makedirs(folder)
            path = os.path.join(folder, PurePosixPath(key).name)
            with open(path, "wb") as f:
                f.write(data)
            parent = str(PurePosixPath(key).parent)
            shown[folder + os.sep] = "" if parent == "." else parent + "/"
            return path

        files = {"image": place("input", request.key, request.data)}
        if request.mask_key is not None and request.mask_data is not None:
            files["mask"] = place("mask", request.mask_key, request.mask_data)
        output = os.path.join(tmp, "output", request.output_name)
        os.makedirs(os.path.dirname(output))

        def failed(error: BaseException | str, retry: bool) -> ItemOutcome:
            message = " ".join(str(error).split()) or type(error).__name__
            for folder, name in shown.items():
                message = message.replace(folder, name)
            return ItemOutcome(request.key, False, me, error=message, retry=retry)

        try:
            job = build_job(JobSpec(request.task, files, request.options))
            restored = restore(job, replace(request.settings, device=request.device, progress=False))
            write_result(restored, output)
        except (InputError, ImageError, ValueError) as exc:  # the item itself is bad: retrying will not help
            return failed(exc, retry=False)
        except (RuntimeError, MemoryError, OSError) as exc:  # out of memory, a device failure: may pass elsewhere
            return failed(f"{type(exc).__name__}: {exc}", retry=True)
        except KeyboardInterrupt:
            return ItemOutcome(request.key, False, me, error="interrupted", interrupted=True)
        with open(output, "rb") as f:
            data = f.read()
    result = restored.result
    return ItemOutcome(request.key, True, me, output=data, seconds=round(result.seconds, 3),
                       iterations=result.iterations_run, stop_iteration=result.stop_iteration,
                       stop_reason=result.stop_reason)
