"""The per-step history of a fit and its progress bar."""
from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from deepprior.fitting.result import IterationState

__all__ = ["Progress", "history_row"]


def history_row(state: IterationState, *, has_ground_truth: bool) -> dict[str, Any]:
    """One row of :attr:`FitResult.history`: the loss, the data term when it differs, backtracking,
    the PSNRs when a ground truth is known, and the time so far."""
    row: dict[str, Any] = {"iteration": state.iteration, "loss": state.loss}
    if state.fit is not None and state.fit != state.loss:
        row["fit"] = state.fit
    if state.backtracked:
        row["backtracked"] = True
    if has_ground_truth:
        row["psnr_raw"] = state.psnr
        if state.average is not None:
            row["psnr_average"] = state.psnr_average
        row["psnr"] = state.psnr_average if state.average is not None else state.psnr
    row["seconds"] = round(state.seconds, 4)
    return row


class Progress:
    """A tqdm bar over the iteration budget showing the loss and, with a ground truth, the PSNR."""

    def __init__(self, total: int, done: int, description: str, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=done, desc=description, disable=not enabled, unit="it", leave=False)

    def update(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.bar.update(1)
        if row["iteration"] % 10 == 0 or row["iteration"] == self.total:
            postfix = {"loss": f"{row['loss']:.5f}"}
            if "psnr" in row:
                postfix["psnr"] = f"{row['psnr']:.2f}"
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        self.bar.close()
