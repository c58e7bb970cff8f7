"""Long runs: checkpoints, and resuming to exactly the result of an uninterrupted run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_preset

from deepprior.engine import run
from deepprior.imageio import to_tensor


def _interrupt_after(n: int):
    def callback(state) -> str | None:
        return "interrupted (test)" if state.iteration == n else None

    return callback


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resumed_run_equals_the_uninterrupted_one(tmp_path: Path, clean_rgb: np.ndarray, precision: str) -> None:
    noisy = to_tensor(np.clip(clean_rgb[:24, :24] + 0.1 * np.random.default_rng(0).standard_normal((24, 24, 3)), 0, 1))
    preset = tiny_preset(30, ema_weight=0.9, ema_debias=True, backtrack_db=5.0, param_noise=0.01)
    kwargs = dict(image_size=(24, 24), seed=3, stop="auto", sigma=0.1, precision=precision)
    whole, _, _ = run(noisy, None, preset, **kwargs)
    ckpt = tmp_path / "run.ckpt"
    first, _, _ = run(noisy, None, preset, checkpoint=str(ckpt), checkpoint_every=7,
                      callbacks=[_interrupt_after(12)], **kwargs)
    assert first.iterations_run == 12 and ckpt.exists()
    resumed, _, seed = run(noisy, None, preset, checkpoint=str(ckpt), resume=True,
                           **{**kwargs, "seed": None})
    assert seed == 3 and resumed.iterations_run == whole.iterations_run
    assert torch.equal(resumed.output, whole.output)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    assert resumed.stopping == whole.stopping


def test_resume_refuses_another_runs_checkpoint(tmp_path: Path, clean_rgb: np.ndarray) -> None:
    y = to_tensor(clean_rgb[:16, :16])
    ckpt = tmp_path / "run.ckpt"
    run(y, None, tiny_preset(3), image_size=(16, 16), seed=0, iterations=3, checkpoint=str(ckpt))
    with pytest.raises(ValueError, match="another run"):
        run(to_tensor(clean_rgb[:32, :32]), None, tiny_preset(3), image_size=(32, 32), iterations=3,
            checkpoint=str(ckpt), resume=True)


def test_cli_sigterm_writes_checkpoint_and_output_then_resume_matches(tmp_path: Path, clean_rgb: np.ndarray) -> None:
    import json
    import signal
    import subprocess
    import sys
    import time

    from deepprior.imageio import read_image, write_image

    write_image(tmp_path / "noisy.png", np.clip(clean_rgb[:32, :32] + 0.1 * np.random.default_rng(1)
                                                 .standard_normal((32, 32, 3)), 0, 1))
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps({"base": "denoise", "name": "tiny", "input_channels": 8,
                                  "net_options": {"channels_down": [8, 16], "channels_up": [8, 16],
                                                  "channels_skip": [2, 2]}, "fit": {"iterations": 150}}))
    common = ["denoise", str(tmp_path / "noisy.png"), "--preset", str(recipe), "--iterations", "150", "--seed", "0",
              "--sigma", "25", "-q"]
    command = [sys.executable, "-m", "deepprior.cli"]
    whole = tmp_path / "whole.png"
    subprocess.run([*command, *common, "-o", str(whole)], check=True)
    ckpt, part = tmp_path / "run.ckpt", tmp_path / "part.png"
    process = subprocess.Popen([*command, *common, "-o", str(part), "--checkpoint", str(ckpt),
                                "--checkpoint-every", "10"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "stopped by SIGTERM" in err and "--resume" in err
    assert part.exists() and ckpt.exists()  # the best output so far, and where it got to
    resumed = tmp_path / "resumed.png"
    subprocess.run([*command, *common, "-o", str(resumed), "--checkpoint", str(ckpt), "--resume"], check=True)
    assert np.array_equal(read_image(resumed).pixels, read_image(whole).pixels)
