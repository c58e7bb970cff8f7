"""Restoring one batch item, in whatever process runs it (a local worker or a Ray task).

The item travels as bytes and comes back as bytes, so a worker needs no access
to the driver's folders (a Ray node need not share a file system). It runs the
very same code as ``deepprior TASK input -o output``, so a batch output equals
the single-image command's output for the same seed.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["ItemOutcome", "ItemRequest", "restore_item"]


@dataclass(frozen=True)
class ItemRequest:
    """What a worker needs for one image."""

    task: str  # the subcommand: denoise, superres, inpaint, deblur, dejpeg
    key: str  # the input's path relative to the input folder
    data: bytes
    output_name: str  # file name of the output (its extension picks the format)
    options: tuple[str, ...]  # the task's options, as on the command line (--sigma 25 --seed 0 ...)
    mask_key: str | None = None
    mask_data: bytes | None = None
    threads: int = 1
    device: str = "auto"


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
    return f"{socket.gethostname()}:{os.getpid()}"


def restore_item(request: ItemRequest) -> ItemOutcome:
    """Run ``request``'s task on its image; never raises for a problem with the item itself."""
    import torch

    from deepprior.cli import build_parser, run_task
    from deepprior.jobs import InputError
    from deepprior.imageio import ImageError

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

        image = place("input", request.key, request.data)
        output = os.path.join(tmp, "output", request.output_name)
        os.makedirs(os.path.dirname(output))
        record = os.path.join(tmp, "record.json")
        argv = [request.task, image, "-o", output, "--record", record, "--quiet", "--device", request.device,
                *request.options]
        if request.mask_key is not None and request.mask_data is not None:
            argv += ["--mask", place("mask", request.mask_key, request.mask_data)]

        def failed(error: BaseException | str, retry: bool) -> ItemOutcome:
            message = " ".join(str(error).split()) or type(error).__name__
            for folder, name in shown.items():
                message = message.replace(folder, name)
            return ItemOutcome(request.key, False, me, error=message, retry=retry)

        try:
            args = build_parser().parse_args(argv)
            code = run_task(args)
        except SystemExit as exc:  # the options were checked before the batch started, so this is unexpected
            return failed(f"bad task options (exit {exc.code})", retry=False)
        except (InputError, ImageError, ValueError) as exc:  # the item itself is bad: retrying will not help
            return failed(exc, retry=False)
        except (RuntimeError, MemoryError, OSError) as exc:  # out of memory, a device failure: may pass elsewhere
            return failed(f"{type(exc).__name__}: {exc}", retry=True)
        if code == 130:
            return ItemOutcome(request.key, False, me, error="interrupted", interrupted=True)
        with open(record, encoding="utf-8") as f:
            summary = json.load(f)
        with open(output, "rb") as f:
            data = f.read()
    return ItemOutcome(request.key, True, me, output=data, seconds=summary["seconds"],
                       iterations=summary["iterations_run"], stop_iteration=summary["stop_iteration"],
                       stop_reason=summary["stop_reason"])
