"""The fitting loop and what it returns."""
from deepprior.fitting.checkpoint import Checkpoint
from deepprior.fitting.loop import FitConfig, Frame, fit, tensor_psnr
from deepprior.fitting.result import FitResult, IterationState
from deepprior.fitting.stopping import (
    RULES,
    Discrepancy,
    Fixed,
    Oracle,
    StoppingRule,
    WindowedVariance,
    make_rule,
)

__all__ = [
    "RULES",
    "Checkpoint",
    "Discrepancy",
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
    "tensor_psnr",
]
