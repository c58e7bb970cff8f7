"""The fitting loop and what it returns."""
from deepprior.fitting.loop import FitConfig, Frame, fit
from deepprior.fitting.result import FitResult, IterationState
from deepprior.fitting.stopping import RULES, Fixed, Oracle, StoppingRule, WindowedVariance, make_rule

__all__ = [
    "RULES",
    "FitConfig",
    "FitResult",
    "Fixed",
    "Frame",
    "IterationState",
    "Oracle",
    "StoppingRule",
    "WindowedVariance",
    "fit",
    "make_rule",
]
