"""deepprior: image restoration with the Deep Image Prior.

Three ways in, one engine underneath:

- the NumPy API: :func:`denoise`, :func:`super_resolve`, :func:`inpaint`,
  :func:`deblur`, :func:`dejpeg`, :func:`flash_no_flash`, :func:`run_task` for
  any registered task and the general :func:`restore` for any operator;
- the torch-level pieces for researchers: :mod:`deepprior.nets`,
  :mod:`deepprior.operators`, :func:`fit`, :mod:`deepprior.presets`;
- the ``deepprior`` command.
"""
from deepprior.version import __version__
from deepprior.api import deblur, dejpeg, denoise, flash_no_flash, inpaint, restore, run_task, super_resolve
from deepprior.fitting import FitConfig, FitResult, fit
from deepprior.presets import PRESETS, Preset, get_preset

__all__ = [
    "PRESETS",
    "FitConfig",
    "FitResult",
    "Preset",
    "__version__",
    "deblur",
    "dejpeg",
    "denoise",
    "fit",
    "flash_no_flash",
    "get_preset",
    "inpaint",
    "restore",
    "run_task",
    "super_resolve",
]
