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
- :class:`Discrepancy` stops when the fit to the measurement is as close as
  the noise allows (Morozov's discrepancy principle): once the data term
  falls to the variance a perfect restoration would leave, what remains to
  fit is noise. It needs the noise level, given or estimated.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import torch

from deepprior.fitting.result import IterationState
from deepprior.noise import clipped_noise_variance

__all__ = [
    "RULES",
    "Discrepancy",
    "Fixed",
    "Oracle",
    "StoppingRule",
    "WindowedVariance",
    "clipped_noise_variance",
    "make_rule",
]

RULES = ("auto", "fixed", "oracle")
# auto's settling threshold for clean measurements: the 100-step window mean moving by less than this
# (about 57 dB below the signal) over 100 steps. Chosen on the recorded Set5 x4 runs (bench/studies/stopping_study.py).
AUTO_PLATEAU = 2e-6


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

    def monitor(self) -> dict[str, float]:
        """The rule's detector values now, by name, for live plots (may be empty)."""
        return {}


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
    and the output at the minimum is returned: the recipe's averaged output
    when it averages, else the mean of the window's outputs, which is steadier
    than any single one of them. Running sums keep each step O(image size).
    This is the rule for measurements of the image itself without a noise
    level (JPEG artefacts, which a network fits in the end as it fits noise);
    for noisy measurements :class:`Discrepancy` stops closer to the best point.

    With ``patience=None`` there is no minimum to find: the rule ends the run
    only on a plateau (below) and returns the latest window mean (or average),
    at the plateau or at the step cap. This is the rule for clean measurements
    through an operator (super-resolution, inpainting): nothing in them can be
    overfitted, and on a texture the outputs vary more as the network learns
    it, so the calmest output is an early, blurred one (inpaint11's fingerprint
    stopped at step 156 for 24.3 dB, against 33.5 dB for biharmonic).

    With ``plateau``, the run also stops once the output has settled: when
    the window mean has moved by less than ``plateau`` (mean squared change
    per pixel, images in [0, 1]) over the last ``window`` steps, checked
    every ``window // 2`` steps; the current window mean (or average) is then
    returned. Clean measurements (super-resolution, inpainting) improve ever
    more slowly without overfitting, and this ends the run when the rest of
    the budget would change nothing visible.
    """

    name = "windowed-variance"

    def __init__(self, window: int = 100, patience: int | None = 1000, plateau: float | None = None) -> None:
        if window < 2 or (patience is not None and patience < 1) or (plateau is not None and not plateau > 0):
            raise ValueError(f"window must be >= 2, patience >= 1 and plateau > 0, got {window}, {patience}, {plateau}")
        self.window = window
        self.patience = patience
        self.plateau = plateau
        self._means: dict[int, torch.Tensor] = {}
        self._best_iteration: int | None = None
        self.drifts: list[tuple[int, float]] = []
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
        mean = self._sum / self.window
        variance = max(self._sum_sq / self.window - float(mean.pow(2).sum()), 0.0) / mean.numel()
        drift = None
        if self.plateau is not None and state.iteration % (self.window // 2) == 0:
            self._means[state.iteration] = mean.clone()
            earlier = self._means.pop(state.iteration - 2 * (self.window // 2), None)
            if earlier is not None:
                drift = float((mean - earlier).pow(2).mean())
        reason, selected = self._decide(state.iteration, variance, drift)
        if selected:
            chosen = state.average if state.average is not None else mean
            self.best = (state.iteration, chosen.clone())
        return reason

    def _decide(self, iteration: int, variance: float, drift: float | None) -> tuple[str | None, bool]:
        """The rule's logic on this step's signals: (a reason to stop or ``None``, whether this
        step's output becomes the one returned). Kept apart so runs can be replayed from records."""
        self.variances.append((iteration, variance))
        if drift is not None:
            self.drifts.append((iteration, drift))
        selected = False
        if self.patience is None:  # no minimum to look for: the latest output is the one returned
            self.min_variance = min(self.min_variance, variance)
            self._best_iteration = iteration
            selected = True
        elif variance < self.min_variance:
            self.min_variance = variance
            self._best_iteration = iteration
            selected = True
        elif self._best_iteration is not None and iteration - self._best_iteration >= self.patience:
            return (f"auto: output variance lowest at iteration {self._best_iteration}, no lower for "
                    f"{self.patience} steps"), False
        if drift is not None and self.plateau is not None and drift < self.plateau:
            self._best_iteration = iteration
            return (f"auto: output settled at iteration {iteration} (it moved {math.sqrt(drift) * 255:.2f} grey "
                    f"levels RMS over the last {2 * (self.window // 2)} steps, below "
                    f"{math.sqrt(self.plateau) * 255:.2f})"), True
        return None, selected

    @classmethod
    def replay(cls, variances: list[tuple[int, float]], drifts: list[tuple[int, float]], *, window: int = 100,
               patience: int | None = 1000, plateau: float | None = None) -> tuple[int | None, int | None]:
        """Where the rule would have stopped, and whose output it would have returned, given the
        per-step window variances and the window-mean drifts a run recorded (``bench/quality.py``).

        >>> WindowedVariance.replay([(i, 1.0 / i) for i in range(10, 400)], [(i, 1e-3 / i) for i in range(20, 400, 5)],
        ...                         window=10, patience=100, plateau=5e-6)
        (205, 205)
        """
        rule = cls(window=window, patience=patience, plateau=plateau)
        drift_at = dict(drifts)
        for iteration, variance in variances:
            reason, _ = rule._decide(iteration, variance, drift_at.get(iteration))
            if reason:
                return iteration, rule._best_iteration
        return None, rule._best_iteration

    def selection(self) -> tuple[int, torch.Tensor] | None:
        return self.best

    def monitor(self) -> dict[str, float]:
        values = {"output variance": self.variances[-1][1]} if self.variances else {}
        if self.drifts:
            values["output change"] = self.drifts[-1][1]
            if self.plateau is not None:
                values["settled below"] = self.plateau
        return values

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "window": self.window, "patience": self.patience, "plateau": self.plateau,
                "detected_iteration": self.best[0] if self.best else None,
                "min_variance": self.min_variance if self.best else None}


class Discrepancy(StoppingRule):
    """Stop once the data term falls to the noise level (Morozov's principle).

    The data term (mean squared error between the operator's view of the
    output and the measurement), averaged over the last ``window``
    iterations, is compared with the residual a perfect restoration would
    leave: ``sigma**2``, or with ``clipped=True`` (noise clipped to [0, 1],
    as in saved images) the smaller :func:`clipped_noise_variance` of the
    current output. The output at that iteration (the averaged one when
    averaging is on) is returned. Measured on set9 at sigma 25 with the true
    sigma, this lands within 0.1 dB of the best iteration on every image
    (``bench/quality.py``).

    >>> rule = Discrepancy(sigma=0.1, window=2, clipped=False)
    >>> [rule(IterationState(i, f, torch.zeros(1), None, fit=f)) for i, f in enumerate([0.03, 0.02, 0.011, 0.009], 1)]
    [None, None, None, 'auto: fit reached the noise level (25.5 of 255) at iteration 4']
    """

    name = "discrepancy"

    def __init__(self, sigma: float, window: int = 50, clipped: bool = True, factor: float = 1.0) -> None:
        if not sigma > 0 or window < 1 or not factor > 0:
            raise ValueError(f"sigma and factor must be > 0 and window >= 1, got {sigma}, {factor} and {window}")
        self.sigma = float(sigma)
        self.window = window
        self.clipped = clipped
        self.factor = factor
        self._fits: deque[float] = deque(maxlen=window)
        self.threshold: float | None = None
        self.stopped_at: int | None = None
        self._clipped_at: int | None = None  # when the clipped noise variance was last computed
        self._clipped_variance = 0.0

    #: Steps between computations of the clipped noise variance: it follows the slowly moving output, and costs
    #: about a fifth of a small network's step at 256x256.
    refresh = 10

    def __call__(self, state: IterationState) -> str | None:
        if state.backtracked:  # a rejected step's loss says nothing about the fit
            return None
        self._fits.append(state.fit if state.fit is not None else state.loss)
        level = sum(self._fits) / len(self._fits)
        if len(self._fits) < self.window or level > self.factor * self.sigma**2:
            return None  # the clipped variance is never above sigma**2: no need to compute it yet
        if self.clipped and (self._clipped_at is None or state.iteration - self._clipped_at >= self.refresh):
            self._clipped_variance = clipped_noise_variance(_returned(state), self.sigma)
            self._clipped_at = state.iteration
        self.threshold = self.factor * (self._clipped_variance if self.clipped else self.sigma**2)
        if level <= self.threshold:
            self.stopped_at = state.iteration
            return (f"auto: fit reached the noise level ({self.sigma * 255:.1f} of 255) at iteration "
                    f"{state.iteration}")
        return None

    def monitor(self) -> dict[str, float]:
        if not self._fits:
            return {}
        return {"fit (smoothed)": sum(self._fits) / len(self._fits),
                "noise level": self.threshold if self.threshold is not None else self.factor * self.sigma**2}

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "sigma": self.sigma, "window": self.window, "clipped": self.clipped,
                "factor": self.factor, "threshold": self.threshold, "stopped_at": self.stopped_at}


def make_rule(name: str, *, sigma: float | None = None, clipped: bool = True, factor: float = 1.0,
              direct: bool = True, **options: int) -> StoppingRule:
    """A rule by name: ``auto``, ``fixed`` (needs ``iterations``) or ``oracle``.

    ``auto`` with the measurement's noise level ``sigma`` (given or
    estimated) is :class:`Discrepancy` (stopping at ``factor`` times the
    noise level); without one, or with one below a grey level,
    :class:`WindowedVariance`: at its least-variance output when the
    measurement is the image itself (``direct``: JPEG artefacts are fitted
    in the end), else (super-resolution, inpainting) when the output settles.
    """
    if name == "auto":
        if sigma is not None and sigma >= 1 / 255:
            return Discrepancy(sigma, clipped=clipped, factor=factor, **options)
        settle_only = {} if direct else {"patience": None}
        return WindowedVariance(**{"plateau": AUTO_PLATEAU, **settle_only, **options})
    if name == "fixed":
        return Fixed(**options)
    if name == "oracle":
        return Oracle()
    raise ValueError(f"unknown stopping rule {name!r} (use {', '.join(RULES)})")
