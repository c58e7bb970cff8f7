"""Figures of a run: a side-by-side comparison and the learning curves.

Written with matplotlib's non-interactive Agg backend, so they work on a
headless machine.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from deepprior.imageio import atomic_write_bytes

__all__ = ["comparison_figure", "curves_figure"]


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def comparison_figure(
    path: str | os.PathLike[str], panels: Sequence[tuple[str, np.ndarray]], *, panel_size: float = 3.2
) -> None:
    """Save ``(title, (H, W, C) image)`` panels side by side as a PNG.

    Panels of different sizes (a low-resolution input) are shown at the same
    displayed size with nearest-neighbour interpolation, so pixels stay visible.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size * len(panels), panel_size + 0.4), squeeze=False)
    for ax, (title, image) in zip(axes[0], panels):
        shown = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        ax.imshow(np.clip(shown, 0, 1), cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    _save(fig, path)


def curves_figure(
    path: str | os.PathLike[str], history: Sequence[dict[str, Any]], *, stop_iteration: int | None = None,
    stop_reason: str | None = None,
) -> None:
    """Save the loss (log scale) and, when recorded, PSNR against iteration,
    with the stop iteration marked."""
    its = [row["iteration"] for row in history]
    has_psnr = any("psnr" in row for row in history)
    fig, axes = plt.subplots(1, 2 if has_psnr else 1, figsize=(10 if has_psnr else 5.5, 3.6), squeeze=False)
    ax = axes[0][0]
    ax.semilogy(its, [row["loss"] for row in history], lw=1, color="tab:blue")
    ax.set_xlabel("iteration")
    ax.set_ylabel("data loss (MSE)")
    ax.grid(alpha=0.3)
    if has_psnr:
        ax2 = axes[0][1]
        for key, label in (("psnr_raw", "output"), ("psnr_average", "averaged output")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax2.plot(its, values, lw=1, label=label)
        ax2.set_xlabel("iteration")
        ax2.set_ylabel("PSNR to ground truth (dB)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    if stop_iteration is not None:
        for row_axes in axes:
            for a in row_axes:
                a.axvline(stop_iteration, color="tab:red", ls="--", lw=1,
                          label=f"stop: {stop_reason}" if a is axes[0][0] else None)
        axes[0][0].legend(fontsize=8)
    _save(fig, path)
