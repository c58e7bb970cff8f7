"""The exponential moving average of the network's outputs (the paper's ``exp_weight``)."""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["OutputAverage"]


class OutputAverage:
    """``avg = w * avg + (1 - w) * out`` over the steps taken.

    The original starts the average at the first output. With ``debias`` it starts at zero and is divided
    by ``1 - w ** t``, as Adam does with its moments, so the first, blank outputs of a short run weigh
    almost nothing.

    >>> avg = OutputAverage(0.5)
    >>> for value in (1.0, 3.0):
    ...     avg.update(torch.tensor([value]))
    >>> avg.value.item()
    2.0
    """

    def __init__(self, weight: float, debias: bool = False) -> None:
        self.weight = weight
        self.debias = debias
        self.value: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None  # the zero-started average, for debias
        self._steps = 0

    def update(self, latest: torch.Tensor) -> None:
        w = self.weight
        if self.debias:
            self._steps += 1
            self._sum = latest * (1 - w) if self._sum is None else self._sum.mul_(w).add_(latest, alpha=1 - w)
            self.value = self._sum / (1 - w**self._steps)
        elif self.value is None:
            self.value = latest.clone()
        else:
            self.value.mul_(w).add_(latest, alpha=1 - w)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.value, "ema_sum": self._sum, "ema_steps": self._steps}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        def moved(t: torch.Tensor | None) -> torch.Tensor | None:
            return t.to(device) if t is not None else None

        self.value, self._sum, self._steps = moved(state["average"]), moved(state["ema_sum"]), state["ema_steps"]
