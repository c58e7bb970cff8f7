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
    cropped to the image frame, detached, ``(1, C, H, W)``. ``fit`` is the
    data term alone, the mean squared error between the operator's view of
    the output and the measurement (``loss`` adds any SURE or TV terms).
    """

    iteration: int
    loss: float
    output: torch.Tensor
    average: torch.Tensor | None
    fit: float | None = None
    psnr: float | None = None
    psnr_average: float | None = None
    backtracked: bool = False
    seconds: float = 0.0
    monitor: dict[str, float] = field(default_factory=dict)  # the stopping rule's detector values, for live plots


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
        the reason given by the stopping rule or callback that ended it).
    selected : the output a stopping rule picked (an earlier one than the
        last), or ``None``.
    stopping : what the stopping rule saw and decided.
    seconds : wall time of the loop.
    precision : the arithmetic the network ran in (``"fp32"`` or ``"bf16"``).
    parameters : trainable parameters of the network.
    refined : the output of a classical stage run after the fit (see
        :mod:`deepprior.refine`), or ``None``; it is then :attr:`output`.
    refinement : what that stage was and did.
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
    selected: torch.Tensor | None = None
    stopping: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    refined: torch.Tensor | None = None
    refinement: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> torch.Tensor:
        """The restored image: the refined one when a refinement ran, else :attr:`fitted`."""
        return self.refined if self.refined is not None else self.fitted

    @property
    def fitted(self) -> torch.Tensor:
        """The network's result: the output the stopping rule picked, else the
        averaged output when averaging was on, else the last one."""
        if self.selected is not None:
            return self.selected
        return self.average if self.average is not None else self.image

    @property
    def psnr(self) -> float | None:
        """PSNR (dB) of :attr:`fitted` against the ground truth, if one was given."""
        if not self.history:
            return None
        return self.history[min(self.stop_iteration, len(self.history)) - 1].get("psnr")

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history]
