"""Stopping rules: when to end a fit, and which output to give back.

DIP fits natural structure first and the noise later, so the best output lies
somewhere inside the run. A rule sees every iteration's state; it may end the
run (by returning a reason) and may pick an earlier output than the last one.

- :class:`Fixed` runs a set number of steps: the paper's behaviour.
- :class:`Oracle` keeps the output closest to a known ground truth. It needs
  the answer, so it is for benchmarks only.
- :class:`WindowedVariance` finds the peak from the run itself, with no
  ground truth: the variance of successive outputs over a sliding window
  falls while the network settles on the image and rises once it starts
  fitting the noise (Wang et al., "Early Stopping for Deep Image Prior",
  TMLR 2023). The output at the variance minimum is returned.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch

from deepprior.fitting.result import IterationState

__all__ = ["StoppingRule", "Fixed", "Oracle", "WindowedVariance", "make_rule", "RULES"]

RULES = ("auto", "fixed", "oracle")


class StoppingRule:
    """Base class: never stops early, returns the last output."""

    name = "rule"

    def __call__(self, state: IterationState) -> str | None:
        """Look at one iteration; return a reason to stop now, or ``None``."""
        return None

    def selection(self) -> tuple[int, torch.Tensor] | None:
        """``(iteration, image)`` to return instead of the last output, or ``None``."""
        return None

    def describe(self) -> dict[str, object]:
        """What the rule saw and decided, for the run's record."""
        return {"rule": self.name}


def _returned(state: IterationState) -> torch.Tensor:
    return state.average if state.average is not None else state.output


class Fixed(StoppingRule):
    """Stop after ``iterations`` steps and return the last output.

    >>> rule = Fixed(3)
    >>> [rule(IterationState(i, 0.0, torch.zeros(1), None)) for i in (1, 2, 3)]
    [None, None, 'fixed: 3 iterations']
    """

    name = "fixed"

    def __init__(self, iterations: int) -> None:
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = iterations

    def __call__(self, state: IterationState) -> str | None:
        return f"fixed: {self.iterations} iterations" if state.iteration >= self.iterations else None

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "iterations": self.iterations}


class Oracle(StoppingRule):
    """Return the output with the best PSNR against the ground truth given to
    :func:`deepprior.fit`. It peeks at the answer: use it to measure how far
    another rule is from the best possible stop, never to restore real images."""

    name = "oracle"

    def __init__(self, score: Callable[[torch.Tensor], float] | None = None) -> None:
        """``score`` rates an output (higher is better); by default the PSNR
        the loop computes against its ground truth. Pass another to select by
        the evaluation's own metric (luma PSNR for super-resolution, say)."""
        self.score = score
        self.best_psnr = -float("inf")
        self.best: tuple[int, torch.Tensor] | None = None

    def __call__(self, state: IterationState) -> str | None:
        if self.score is not None:
            value: float | None = self.score(_returned(state))
        else:
            value = state.psnr_average if state.average is not None else state.psnr
        if value is None:
            raise ValueError("the oracle stopping rule needs a ground truth")
        if value > self.best_psnr:
            self.best_psnr = value
            self.best = (state.iteration, _returned(state).clone())
        return None

    def selection(self) -> tuple[int, torch.Tensor] | None:
        return self.best

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "best_iteration": self.best[0] if self.best else None, "best_psnr": self.best_psnr}


class WindowedVariance(StoppingRule):
    """Detect the peak from the variance of the last ``window`` raw outputs.

    ``V_t = mean over the window of ||x_s - mean(x)||^2 / n_pixels``. Once no
    new minimum of ``V`` has been seen for ``patience`` steps, the run stops
    and the output at the minimum (the averaged one when averaging is on) is
    returned. Running sums keep each step O(image size).
    """

    name = "auto"

    def __init__(self, window: int = 100, patience: int = 1000) -> None:
        if window < 2 or patience < 1:
            raise ValueError(f"window must be >= 2 and patience >= 1, got {window} and {patience}")
        self.window = window
        self.patience = patience
        self._outputs: deque[torch.Tensor] = deque()
        self._sum: torch.Tensor | None = None
        self._sum_sq = 0.0
        self.min_variance = float("inf")
        self.best: tuple[int, torch.Tensor] | None = None
        self.variances: list[tuple[int, float]] = []

    def _push(self, x: torch.Tensor) -> None:
        self._outputs.append(x)
        self._sum = x.clone() if self._sum is None else self._sum.add_(x)
        self._sum_sq += float((x * x).sum())
        if len(self._outputs) > self.window:
            old = self._outputs.popleft()
            self._sum.sub_(old)
            self._sum_sq -= float((old * old).sum())
        if len(self._outputs) == self.window and len(self.variances) % self.window == 0:
            # recompute from scratch now and then, so rounding does not drift
            self._sum = torch.stack(list(self._outputs)).sum(0)
            self._sum_sq = float(sum(float((o * o).sum()) for o in self._outputs))

    def __call__(self, state: IterationState) -> str | None:
        self._push(state.output.detach().float().clone())
        if len(self._outputs) < self.window:
            return None
        assert self._sum is not None
        n = self._sum.numel()
        variance = max(self._sum_sq / self.window - float((self._sum / self.window).pow(2).sum()), 0.0) / n
        self.variances.append((state.iteration, variance))
        if variance < self.min_variance:
            self.min_variance = variance
            self.best = (state.iteration, _returned(state).clone())
        elif self.best is not None and state.iteration - self.best[0] >= self.patience:
            return f"auto: output variance lowest at iteration {self.best[0]}, no lower for {self.patience} steps"
        return None

    def selection(self) -> tuple[int, torch.Tensor] | None:
        return self.best

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "window": self.window, "patience": self.patience,
                "detected_iteration": self.best[0] if self.best else None, "min_variance": self.min_variance}


def make_rule(name: str, **options: int) -> StoppingRule:
    """A rule by name: ``auto``, ``fixed`` (needs ``iterations``) or ``oracle``."""
    if name == "auto":
        return WindowedVariance(**options)
    if name == "fixed":
        return Fixed(**options)
    if name == "oracle":
        return Oracle()
    raise ValueError(f"unknown stopping rule {name!r} (use {', '.join(RULES)})")
