"""Shared fixtures: small synthetic or scikit-image test images (never the
shared evaluation images) and a tiny preset that keeps end-to-end runs fast."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from skimage import data

from deepprior.fitting import FitConfig
from deepprior.presets import Preset

# Ray clusters started by tests (and the drivers and nodes they start) bind and resolve to loopback only
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# two threads (the CI machine's cores), or fewer when OMP_NUM_THREADS says so (a benchmark running beside)
torch.set_num_threads(min(2, int(os.environ.get("OMP_NUM_THREADS", "2"))))


@pytest.fixture(scope="session")
def clean_rgb() -> np.ndarray:
    """A 48x48 crop of scikit-image's astronaut, float32 in [0, 1]."""
    return (data.astronaut()[100:148, 180:228].astype(np.float32) / 255).copy()


@pytest.fixture(scope="session")
def clean_grey() -> np.ndarray:
    """A 48x48 crop of scikit-image's camera man, float32 in [0, 1]."""
    return (data.camera()[180:228, 200:248].astype(np.float32) / 255).copy()


def tiny_preset(iterations: int = 100, **fit: object) -> Preset:
    """A small 3-scale skip network: the paper's recipe shape at a fraction of the cost."""
    config = {"iterations": iterations, "lr": 0.01, "reg_noise_std": 1 / 30, **fit}
    return Preset(
        name="tiny",
        task="test",
        summary="tiny network for tests",
        reproduces="nothing",
        net_options={"channels_down": (16, 32, 32), "channels_up": (16, 32, 32), "channels_skip": (4, 4, 4),
                     "upsample_mode": "bilinear", "pad": "reflection"},
        input_channels=8,
        fit=FitConfig(**config),  # type: ignore[arg-type]
    )


@pytest.fixture
def tiny() -> type:
    return tiny_preset  # type: ignore[return-value]


def require(module: str) -> object:
    """Import an optional extra's module for a test: skipped where the extra is not installed, but an error in
    CI (``CI`` set), where ``.ci/run`` installs every extra and a skip would hide a broken install."""
    import importlib
    import os

    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)
