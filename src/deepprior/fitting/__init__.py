"""The fitting loop and what it returns."""
from deepprior.fitting.loop import FitConfig, Frame, fit
from deepprior.fitting.result import FitResult, IterationState

__all__ = ["FitConfig", "FitResult", "Frame", "IterationState", "fit"]
