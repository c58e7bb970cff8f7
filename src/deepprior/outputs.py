"""Where a restoration's results go: checked before any work, written all or nothing.

Every interface that writes files (the command line, batch workers, the web app) checks its targets with
:func:`check_targets` before the fit starts and writes with :func:`write_result`, which puts the image and
its record in place together: both are written to temporary files beside their targets first, so a crash
leaves both or neither, and an input is never overwritten.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepprior.imageio import atomic_destination, check_output_path, from_tensor, write_image
from deepprior.jobs import InputError

__all__ = ["check_targets", "snapshot_callback", "write_report", "write_result"]


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _check_writable(folder: str, what: str) -> None:
    """The folder must exist and take a new file (tried for real, so it holds for root and odd mounts too)."""
    shown = folder or "."
    if not os.path.isdir(shown):
        raise InputError(f"{what} folder '{shown}' does not exist")
    try:
        handle, probe = tempfile.mkstemp(prefix=".deepprior-probe-", dir=shown)
    except OSError as exc:
        raise InputError(f"{what} folder '{shown}' cannot be written: {exc.strerror or exc}") from None
    os.close(handle)
    os.remove(probe)


def _check_file_target(path: str, what: str, inputs: Sequence[str]) -> None:
    if os.path.isdir(path):
        raise InputError(f"{what} '{path}' is a folder")
    _check_writable(os.path.dirname(os.path.abspath(path)), what)
    if any(_same_file(path, source) for source in inputs):
        raise InputError(f"{what} '{path}' would overwrite an input")


def _check_folder_target(path: str, what: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{what} '{path}' exists and is not a folder")
    _check_writable(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path.rstrip("/\\"))), what)


def check_targets(output: str, inputs: Sequence[str], *, record: str | None = None, report: str | None = None,
                  snapshots: str | None = None, checkpoint: str | None = None) -> None:
    """Refuse, with one line, targets that could not be written or would destroy an input or each other."""
    check_output_path(output, *inputs)
    _check_file_target(output, "output", inputs)
    files = {"record": record, "checkpoint": checkpoint}
    for what, path in files.items():
        if path is not None:
            _check_file_target(path, what, inputs)
            if _same_file(path, output):
                raise InputError(f"{what} '{path}' and the output name the same file")
    if record and checkpoint and _same_file(record, checkpoint):
        raise InputError("the record and the checkpoint name the same file")
    for what, folder in (("report", report), ("snapshots", snapshots)):
        if folder is not None:
            _check_folder_target(folder, what)
            if any(_same_file(folder, p) for p in filter(None, [output, record, checkpoint])):
                raise InputError(f"{what} folder '{folder}' is also the output, record or checkpoint file")


def write_result(restored: Any, output: str, record: str | None = None, *, names_only: bool = False) -> None:
    """Write the restored image (at its input's bit depth, with its transparency) and, if asked, its record:
    both or neither. ``names_only`` records the files by name without their folders (a server's temporary
    folders are nobody's business)."""
    job = restored.job
    if record is None:
        write_image(output, restored.image, bit_depth=job.bit_depth, alpha=job.alpha)
        return
    data = restored.record(os.path.basename(output) if names_only else output)
    if names_only:
        data["inputs"] = [os.path.basename(path) for path in data.get("inputs") or []]
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    with atomic_destination(output) as image_temp, atomic_destination(record) as record_temp:
        write_image(image_temp, restored.image, bit_depth=job.bit_depth, alpha=job.alpha)
        with open(record_temp, "w", encoding="utf-8") as handle:
            handle.write(text)


def write_report(folder: str, restored: Any) -> None:
    """A comparison figure (inputs, result, ground truth, with PSNRs) and the loss / PSNR curves."""
    from deepprior.report import comparison_figure, curves_figure

    job, result = restored.job, restored.result
    os.makedirs(folder, exist_ok=True)
    shown = f"input {restored.input_psnr:.2f} dB" if restored.input_psnr is not None else "input"
    panels: list[tuple[str, np.ndarray]] = [(shown, job.measurement.data)]
    if job.guide is not None:
        panels.insert(0, ("flash (network input)", job.guide))
    panels.append(("restored" + (f" {restored.psnr:.2f} dB" if restored.psnr is not None else ""), restored.image))
    if job.ground_truth is not None:
        panels.append(("ground truth", job.ground_truth))
    comparison_figure(os.path.join(folder, "comparison.png"), panels)
    if result.history:  # a tiled run has one history per tile: the record has them in short
        curves_figure(os.path.join(folder, "curves.png"), result.history, stop_iteration=result.stop_iteration,
                      stop_reason=result.stop_reason)


def snapshot_callback(folder: str, every: int, bit_depth: int = 8) -> Callable[[Any], None]:
    """A fit callback saving the current estimate into ``folder`` every ``every`` steps."""

    def save_snapshot(state: Any) -> None:
        if state.iteration % every == 0:
            os.makedirs(folder, exist_ok=True)
            current = state.average if state.average is not None else state.output
            write_image(os.path.join(folder, f"iteration_{state.iteration:06d}.png"), from_tensor(current.cpu()),
                        bit_depth=bit_depth)

    return save_snapshot
