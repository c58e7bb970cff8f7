"""Backtracking: undo a step that made the data fit collapse (the original's guard against divergence)."""
from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["Backtracker"]


class Backtracker:
    """Keeps a copy of the last good weights; when the PSNR of the data fit drops by more than
    ``threshold_db`` in one step, puts them back instead of taking the step.

    >>> p = torch.nn.Parameter(torch.ones(1))
    >>> guard = Backtracker([p], 5.0)
    >>> guard.check(0.01), guard.check(1.0)  # 20 dB, then 0 dB: a collapse
    (False, True)
    """

    def __init__(self, params: list[torch.Tensor], threshold_db: float) -> None:
        self.params = params
        self.threshold_db = threshold_db
        self.saved = [p.detach().clone() for p in params]
        self.best_psnr = -math.inf
        self.count = 0

    def check(self, data_loss: float) -> bool:
        """Look at this step's data term; return whether the weights were put back."""
        fit_psnr = -10.0 * math.log10(max(data_loss, 1e-12))
        if fit_psnr < self.best_psnr - self.threshold_db:
            with torch.no_grad():
                for p, saved in zip(self.params, self.saved):
                    p.copy_(saved)
            self.count += 1
            return True
        for p, saved in zip(self.params, self.saved):
            saved.copy_(p.detach())
        self.best_psnr = fit_psnr
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"last_good": self.saved, "last_good_psnr": self.best_psnr, "backtracks": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for saved, value in zip(self.saved, state["last_good"]):
            saved.copy_(value)
        self.best_psnr, self.count = state["last_good_psnr"], state["backtracks"]
