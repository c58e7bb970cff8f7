"""A run's record: what was asked, what ran, why it stopped, how good it is, and its history, as JSON-ready
data. Values that JSON cannot hold (an infinite PSNR when the ground truth equals the input, a NaN loss
from a diverged fit) are recorded as ``null``, so a record can always be written."""
from __future__ import annotations

import math
import platform
from typing import Any

__all__ = ["build_record", "json_safe", "versions"]


def versions() -> dict[str, str]:
    import numpy as np
    import PIL
    import skimage
    import torch

    from deepprior.version import __version__

    return {"deepprior": __version__, "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "scikit-image": skimage.__version__, "python": platform.python_version()}


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, tuples as lists (strict JSON).

    >>> json_safe({"psnr": float("inf"), "rows": [1.5, float("nan")]})
    {'psnr': None, 'rows': [1.5, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()}


def build_record(restored: Any, *, output: str | None = None) -> dict[str, Any]:
    """The record of a :class:`~deepprior.pipeline.Restored` written to ``output``."""
    job, result = restored.job, restored.result
    record = {
        "task": job.task, "preset": restored.preset.name, "seed": restored.seed, "device": str(restored.device),
        "precision": result.precision, "inputs": job.inputs, "output": output,
        "image_size": {"height": job.image_size[0], "width": job.image_size[1], "channels": job.channels},
        "noise": job.measurement.noise.describe(), "details": job.details,
        "parameters": result.parameters, "iterations_run": result.iterations_run,
        "stop_iteration": result.stop_iteration, "stop_reason": result.stop_reason,
        "seconds": round(result.seconds, 3), "backtracks": result.backtracks, "stopping": result.stopping,
        "refinement": result.refinement or None,
        "psnr": restored.psnr, "input_psnr": restored.input_psnr,
        "history": [_rounded(row) for row in result.history],
        "versions": versions(),
    }
    if job.reference is not None:
        record[f"{job.reference[0]}_psnr"] = restored.reference_psnr
    return json_safe(record)
