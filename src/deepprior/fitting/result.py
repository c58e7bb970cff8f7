"""What a fit returns: the images, and the history of how they were reached."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["FitResult", "IterationState"]


@dataclass
class IterationState:
    """What callbacks and stopping rules see after each iteration.

    ``output`` is the raw network output for this iteration and ``average``
    the running exponential average (``None`` when averaging is off), both
    cropped to the image frame, detached, ``(1, C, H, W)``.
    """

    iteration: int
    loss: float
    output: torch.Tensor
    average: torch.Tensor | None
    psnr: float | None = None
    psnr_average: float | None = None
    backtracked: bool = False
    seconds: float = 0.0


@dataclass
class FitResult:
    """The outcome of :func:`deepprior.fit`.

    Attributes
    ----------
    image : the network output at the last iteration run, ``(1, C, H, W)``.
    average : the exponential moving average of the outputs, or ``None``.
    history : one dict per iteration: ``iteration``, ``loss`` and, with a
        ground truth, ``psnr`` (of the returned kind of output) and
        ``psnr_raw`` / ``psnr_average``.
    iterations_run : how many optimisation steps were taken.
    stop_iteration : the iteration whose output is returned.
    stop_reason : why the loop ended (``"iterations"``, ``"interrupted"`` or
        the name of the rule or callback that stopped it).
    seconds : wall time of the loop.
    parameters : trainable parameters of the network.
    """

    image: torch.Tensor
    average: torch.Tensor | None
    history: list[dict[str, Any]] = field(default_factory=list)
    iterations_run: int = 0
    stop_iteration: int = 0
    stop_reason: str = "iterations"
    seconds: float = 0.0
    parameters: int = 0
    backtracks: int = 0

    @property
    def output(self) -> torch.Tensor:
        """The restored image: the averaged output when averaging was on, else the last one."""
        return self.average if self.average is not None else self.image

    @property
    def psnr(self) -> float | None:
        """PSNR (dB) of :attr:`output` against the ground truth, if one was given."""
        return self.history[-1].get("psnr") if self.history else None

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history]
