"""Saving a fit's whole state and reading it back, so an interrupted fit ends as the uninterrupted one would."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Checkpoint"]


@dataclass
class Checkpoint:
    """Where, and every how many steps, a fit saves its whole state (see :func:`deepprior.fitting.fit`)."""

    path: str | os.PathLike[str]
    every: int = 100
    meta: dict[str, Any] = field(default_factory=dict)  # saved alongside: what the run was (seed, recipe...)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"checkpoint interval must be >= 1, got {self.every}")

    def due(self, iteration: int, last: int, stopping: bool) -> bool:
        """Whether to save after ``iteration``: every ``every`` steps, at the last step, and when stopping."""
        return stopping or iteration % self.every == 0 or iteration == last

    def save(self, payload: dict[str, Any]) -> None:
        """Write atomically: a temporary file beside the target, then a rename."""
        from deepprior.imageio import atomic_destination

        with atomic_destination(os.fspath(self.path)) as temporary, open(temporary, "wb") as f:
            torch.save({**self.meta, **payload}, f)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> dict[str, Any]:
        """A saved state (it holds the stopping rule object, so only load your own checkpoints)."""
        return torch.load(path, map_location="cpu", weights_only=False)
